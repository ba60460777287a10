"""How many CPU threads a fit uses when ``train.threads`` is not set.

Torch starts with one thread per core. For a small model that is the wrong default: each step's
matrix products are too small to split, so the threads spend the step synchronising, and on a
machine whose cores are busy (other trials, other users) a thread that waits for a core stalls
the whole step. Measured here: a small MLP's epoch went from 0.03 s on one thread to 2.8 s with
torch's default on a loaded 2-core machine, and a ``GridSearchCV`` over ``NeuralClassifier`` from
3.3 s to 105.7 s with identical results.

The rule (documented in docs/train.md):

- the work of one optimiser step is estimated from one forward pass of one example: the
  multiply-adds of every ``Linear``, convolution and recurrent layer, times the batch size,
  times three (forward, and backward through inputs and weights);
- a fit gets one thread per ``FLOP_PER_THREAD`` of that work, at least one;
- and at most the cores that are free: the cores this process may use minus the one-minute load
  average of the machine (rounded down), never below one;
- and never more than the threads torch already has, so a caller that set fewer (``tunelab tune
  --workers`` gives each worker its share) keeps its choice.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn as nn

# About 50 MFLOP per step keeps one thread busy for ~1 ms on a current core: below that the
# per-op synchronisation of a second thread costs more than it saves.
FLOP_PER_THREAD = 50e6


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Usable cores minus the machine's one-minute load average, at least one."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - math.floor(load)))


def step_flops(model: nn.Module, example: torch.Tensor, batch_size: int) -> float:
    """Estimated FLOPs of one training step: 3x the forward multiply-adds of ``batch_size``."""
    macs = 0.0

    def count(module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal macs
        out = output[0] if isinstance(output, tuple) else output
        if not isinstance(out, torch.Tensor):
            return
        if isinstance(module, nn.Linear):
            macs += out.numel() * module.in_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
            macs += out.numel() * kernel
        elif isinstance(module, nn.RNNBase):
            gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
            per_step = gates * module.hidden_size * (module.input_size + module.hidden_size)
            macs += per_step * out.shape[1 if module.batch_first else 0] * module.num_layers

    layers = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return 3.0 * macs * batch_size


def auto_threads(model: nn.Module, example: torch.Tensor, batch_size: int) -> int:
    """The thread count the rule in this module's docstring gives."""
    try:
        flops = step_flops(model, example, batch_size)
    except Exception:  # an exotic forward: fall back to what torch has
        return torch.get_num_threads()
    wanted = max(1, math.floor(flops / FLOP_PER_THREAD))
    return max(1, min(wanted, free_cores(), torch.get_num_threads()))
