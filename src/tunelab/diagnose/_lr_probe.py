"""The LR range test for a plain PyTorch loop (``Doctor.find_lr``).

``tunelab train --find-lr`` and ``doctor --fix`` measure a learning rate on the Trainer's own
step (:func:`tunelab.train.find_lr`). A plain loop has no Trainer, but the doctor holds its
model and optimiser and, through ``watch``, its batches: given the loss function, the same
test runs here on the user's own optimiser (Smith, "Cyclical Learning Rates", 2017; the
fastai / torch-lr-finder procedure): the learning rate grows exponentially each step, the
smoothed loss is recorded, the sweep stops when the sick-trial policy calls the loss diverged,
and the suggestion is the steepest descent before the minimum (``tunelab.train``'s rule).

The test only looks: the model's weights and buffers, the optimiser's state and learning rates,
and torch's random state are restored afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..train import LRFinderResult, LRSweep
from ._probes import split_batch


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    smoothing: float = 0.98,
) -> LRFinderResult:
    """Sweep the learning rate of ``optimizer`` over ``steps`` steps of ``batches``.

    ``batches`` is re-iterated when it runs out (a DataLoader starts a new epoch); each batch
    is ``(inputs, targets)`` (or a dict with ``x``/``y``-like keys) and a step's loss is
    ``loss_fn(model(inputs), targets)``.
    """
    if steps < 5:
        raise ValueError(f"steps must be >= 5, but got {steps}")
    sweep = LRSweep(start_lr, end_lr, steps, smoothing=smoothing)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_lrs = [group["lr"] for group in optimizer.param_groups]
    saved_rng = torch.get_rng_state()
    was_training = model.training
    model.train()
    try:
        for step, batch in zip(range(steps), _endless(batches), strict=False):
            x, y = split_batch(batch)
            if x is None:
                raise ValueError("find_lr needs batches of (inputs, targets)")
            lr = sweep.lr(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            # A sync per step: this probes, it does not train.
            if sweep.record(lr, float(loss.detach().float())):
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        for group, lr in zip(optimizer.param_groups, saved_lrs, strict=True):
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(saved_rng)
        model.train(was_training)
    if not sweep.lrs:
        raise ValueError("find_lr got no batches")
    return sweep.result()


def _endless(batches: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return
