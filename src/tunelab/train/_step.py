"""The optimiser step and the training epoch, as a mixin of :class:`~tunelab.train.Trainer`.

:meth:`StepMixin._optimiser_step` is the one place an optimiser step happens: forward, loss,
L1, backward (weighted per micro-batch, through the fp16 GradScaler), gradient accumulation,
unscaling, the ``after_backward`` hooks, clipping, the step. The training epoch and the LR
finder both call it, so both honour every ``train`` setting.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ._optim import l1_penalty
from ._plan import no_sync

if TYPE_CHECKING:
    from ._callbacks import Callback

MicroBatch = tuple[torch.Tensor, torch.Tensor, float]  # inputs, targets, share of the step's rows


class StepMixin:
    """Needs ``config``, ``loss``, ``plan``, ``state``, ``model``, ``device``, ``rank``..."""

    def _optimiser_step(
        self, micro: Sequence[MicroBatch], after_backward: Sequence[Callback] = ()
    ) -> list[torch.Tensor]:
        """One optimiser step over ``micro`` (its micro-batches); their detached losses."""
        cfg, plan, st = self.config, self.plan, self.state
        opt, scaler = st.optimizer, st.scaler
        opt.zero_grad(set_to_none=True)
        self.step_batches = micro
        if plan.plain and len(micro) == 1 and self.loss is None:
            # Every option off (the usual step): the ops of the general path below, in order,
            # without its branches and calls. Those cost more per step than their bytecode
            # suggests, because the step's kernels evict the interpreter's data from the caches
            # (about 1 % of a digits-MLP fit: BENCHMARKS.md, "Trainer overhead"). The tests
            # check that both paths train to the same weights bit for bit.
            xb, yb, scale = micro[0]
            loss = plan.loss_fn(plan.train_forward(xb), yb)
            (loss if scale == 1.0 else loss * scale).backward()
            losses = [loss.detach()]
            for cb in after_backward:
                cb.after_backward(self, losses[0])
            opt.step()
            return losses
        # fp32 without DDP (the common case) needs neither context: entering two null
        # contexts per micro-batch is Python work a hand-written loop does not do.
        if plan.ddp is None and plan.autocast is contextlib.nullcontext:
            losses = [self._backward(xb, yb, scale) for xb, yb, scale in micro]
        else:
            losses = []
            last = len(micro) - 1
            for j, (xb, yb, scale) in enumerate(micro):
                with no_sync(plan, j == last), plan.autocast():
                    losses.append(self._backward(xb, yb, scale))
        if scaler is not None:
            scaler.unscale_(opt)  # callbacks and clipping see the true gradients
        for cb in after_backward:
            cb.after_backward(self, losses[-1])
        if cfg.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(plan.trainable, float(cfg.clip_grad_norm))
        elif cfg.clip_grad_value is not None:
            nn.utils.clip_grad_value_(plan.trainable, float(cfg.clip_grad_value))
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return losses

    def _backward(self, xb: torch.Tensor, yb: torch.Tensor, scale: float) -> torch.Tensor:
        """Forward, loss, L1 and backward of one micro-batch; its detached loss."""
        plan, scaler = self.plan, self.state.scaler
        outputs = plan.train_forward(xb)
        loss = plan.loss_fn(outputs, yb) if self.loss is None else self.loss(outputs, yb, xb)
        penalty = loss + plan.l1 * l1_penalty(plan.l1_params) if plan.l1 else loss
        # Weight each micro-batch by its share of rows so accumulation equals the big batch.
        backward = penalty if scale == 1.0 else penalty * scale
        if scaler is not None:
            scaler.scale(backward).backward()
        else:
            backward.backward()
        return loss.detach()

    def _micro_batches(self, order: torch.Tensor, first: int, count: int) -> list[MicroBatch]:
        """Micro-batches ``first .. first + count - 1`` of an epoch in ``order``."""
        plan, bs = self.plan, int(self.config.batch_size)
        out = []
        for i in range(first, first + count):
            idx = order[i * bs : (i + 1) * bs]
            xb, yb = plan.X[idx], plan.y[idx]
            if plan.augmenter is not None:
                xb = plan.augmenter(xb, self.state.generator)
            out.append((xb, yb, plan.batch_scales[i]))
        return out

    def _train_epoch(self) -> float:
        """One pass over the training data; returns the mean loss (one host sync)."""
        plan, st = self.plan, self.state
        order = self._epoch_order()
        accum = int(self.config.accumulate_steps)
        after_backward = self._cbs.hook("after_backward")
        batch_end = self._cbs.hook("on_batch_end")
        guard = self.health
        optimiser_step, step_schedule = self._optimiser_step, st.scheduler.step_batch
        micro_batches = len(plan.batch_scales)
        # One micro-batch per step without augmentation (the usual case): the batch is two
        # index ops, with no call to _micro_batches per step.
        single = accum == 1 and plan.augmenter is None
        X, y, bs, scales = plan.X, plan.y, int(self.config.batch_size), plan.batch_scales
        # The step losses stay on the device until the epoch ends: no per-step host sync, and
        # no per-step accumulate op either (appending to a list is ~50x cheaper than add_).
        losses: list[torch.Tensor] = []
        self.model.train()
        for first in range(0, micro_batches, accum):
            if single:
                idx = order[first * bs : (first + 1) * bs]
                micro = [(X[idx], y[idx], scales[first])]
            else:
                micro = self._micro_batches(order, first, min(accum, micro_batches - first))
            step_losses = optimiser_step(micro, after_backward)
            losses += step_losses
            st.global_step += 1
            step_schedule()
            for cb in batch_end:
                cb.on_batch_end(self, st.global_step, step_losses[-1])
            # The guard looks every ``check_every`` steps: one host sync per look. Asked of the
            # policy, which owns the rule (a call per step costs nothing measurable).
            if guard is not None and guard.due(st.global_step):
                self._sicken(guard.judge_step(st.global_step, step_losses[-1], epoch=st.epoch))
            if st.stop is not None and self.world_size == 1:
                break
        # The rows of every batch as a float64 device tensor, made once per fit, not per epoch
        # (sliced only when the epoch stopped early: a slice is one more op).
        full = len(losses) == len(plan.batch_rows)
        rows = plan.batch_rows if full else plan.batch_rows[: len(losses)]
        weights = plan.batch_weights if full else plan.batch_weights[: len(losses)]
        stacked = torch.stack(losses).double()
        if stacked.ndim != 1:  # a custom loss may return shape (1,): flatten
            stacked = stacked.reshape(-1)
        total = torch.dot(stacked, weights)
        if self.world_size > 1:
            totals = torch.stack([total, weights.sum()])
            torch.distributed.all_reduce(totals)
            return float(totals[0] / totals[1])
        return float(total) / max(1, sum(rows))

    def _epoch_order(self) -> torch.Tensor:
        n = len(self.plan.X)
        order = torch.randperm(n, generator=self.state.generator, device=self.device)
        if self.world_size == 1:
            return order
        # DistributedSampler's split: pad by wrapping so every rank gets the same count.
        per_rank = math.ceil(n / self.world_size)
        padded = torch.cat([order, order[: per_rank * self.world_size - n]])
        return padded[self.rank :: self.world_size]

    # Set by the Trainer; declared for readers of this mixin.
    _cbs: Any
    health: Any
