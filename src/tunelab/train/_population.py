"""``Population``: K trials of one architecture trained together in one vectorised pass.

Every member is an ordinary tunelab trial (same builder, init seed, batch order, optimiser,
schedule, loss and metrics as :class:`~tunelab.train.Trainer` with that config); the members'
parameters are stacked along a leading dimension, so one step is one batched forward/backward
and one vectorised optimiser update (``_population_forward.py``, ``_population_optim.py``).

- Members differ in every shape-keeping hyperparameter (:class:`MemberSettings`); trials that
  may share a population have the same :func:`group_key`.
- A member whose loss turns NaN/inf is masked on the device at that step (its parameters and
  optimiser state stop changing; the others are unaffected), and ``judge`` (injectable: the
  Trainer's sick-trial rule) reads each member's epoch metrics; a sick member leaves with status
  ``nan`` or ``diverged``.
- Members sit at different epochs; :meth:`Population.replace_member` refills a slot in place
  while the others keep training; :meth:`Population.member_module` exports a member (its best
  weights by ``monitor``) as a plain model of the builder for ``save_model``.

**Packing widths.** A member may be narrower than the population (``replace_member``'s
``model_params``, e.g. an MLP of width 32 in a population built at width 128; :meth:`fits` says
which shapes may): each of its parameters fills the leading block of the population's tensor
(``weight[:32, :64]`` of a ``(128, 64)`` weight) and the rest of its row is zero. Its padded
hidden units then compute exact zeros (zero weights and bias in, zero weights out), so it
computes exactly its own network, and their gradients are exact zeros too when the activation
maps 0 to 0 (relu, leaky relu, tanh, gelu): a zero parameter with a zero gradient stays zero
under every optimiser (weight decay and AdamW's decay scale a zero, Adam's moments stay zero,
L1's ``sign(0)`` is 0, a norm adds zeros). With an activation that does not (sigmoid) the
padded columns of the gradient are masked each step. Init, batch order and dropout stream are
its own-shape population's (its masks are drawn at its own widths, then spread over the padded
layout), so a packed member ends where the same member trained at its own width ends, up to
the rounding of matmuls with extra zero terms; :meth:`member_module` slices its own-width model
back out, and :meth:`adopt_member` moves a running member of a narrower population into a wider
one (its padded weights and optimiser state are zeros, so they embed exactly). Only the
hand-written dense path (an MLP without batch norm) packs.

The step has no per-member Python and no host sync: losses, gradient norms and the NaN mask stay
on the device and are read once per epoch.

**Cost follows the live members, not the capacity.** An epoch trains only the prefix
``[:hi]`` of the slots, ``hi`` = the highest running slot + 1: every per-step piece (the batch
gather, forward/dense step, loss, dropout masks, clipping, optimiser, validation) takes
``(hi, ...)`` prefix views of the ``(K, P)`` parameters, gradients, optimiser state, buffers and
``(K, 1)`` columns (a prefix of a row-major tensor is a view: nothing is copied). A population of
capacity 16 with one member in slot 0 does the work of a population of 1; fill slots lowest
index first (the executor does) to keep ``hi`` small. Every member is computed row by row, so
its numbers do not depend on ``hi``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..models import ModelSpec, builder_parameters
from ._early_stopping import EarlyStopping, Monitor
from ._population_dense import DenseStep, DropoutMasks, dense_supported
from ._population_forward import BatchedForward, compile_program, supports_module
from ._population_members import (
    _LR,
    DIVERGENCE_FACTOR,
    SHAPE_FREE_MODEL_PARAMS,
    Judge,
    Member,
    MemberSettings,
    default_judge,
    group_key,
    supports,
)
from ._population_metrics import MemberLoss, member_scores
from ._population_optim import MIXED, PopulationOptimizer, clip_, inf_or
from ._result import FitResult
from ._schedules import LRSchedule
from ._setup import batch_sizes, resolve_device

__all__ = [
    "DIVERGENCE_FACTOR",
    "SHAPE_FREE_MODEL_PARAMS",
    "Judge",
    "Member",
    "MemberSettings",
    "Population",
    "default_judge",
    "group_key",
    "population_from_trials",
    "supports",
]


class Population:
    """K slots of one architecture, trained together; fill them with :meth:`replace_member`.

    Args:
        spec: the architecture (builder, params, shapes, init); ``dropout`` is per member.
        bundle: a :class:`~tunelab.data.DataBundle` (train and validation splits are used).
        size: K, the number of slots.
        optimizer, batch_size, nesterov, loss, monitor, device: shared by every member;
            ``optimizer="mixed"``: each member's own (``MemberSettings.optimizer`` and
            ``nesterov``), one update formula for all (``PopulationOptimizer``).
        seed: seeds the dropout masks of the population.
        judge: ``judge(epoch, metrics, history) -> (kind, evidence) | None``, the sick rule.
    """

    def __init__(
        self,
        spec: ModelSpec,
        bundle: Any,
        size: int,
        *,
        optimizer: str = "adam",
        batch_size: int = 64,
        nesterov: bool = False,
        loss: str = "auto",
        monitor: str = "val_loss",
        device: str | torch.device = "cpu",
        seed: int = 0,
        judge: Judge = default_judge,
        eval_batch_size: int | None = None,
    ) -> None:
        self.spec, self.bundle, self.size = spec, bundle, int(size)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.batch_size, self.judge = int(batch_size), judge
        self._has_dropout = "dropout" in builder_parameters(spec.builder)
        self.template = self._build(
            {**spec.params, **({"dropout": 0.5} if self._has_dropout else {})}, 0
        )
        ok, why = supports_module(self.template)
        if not ok:
            raise ValueError(f"this model cannot train as a population: {why}")
        dev, K = self.device, self.size
        move = lambda t: torch.as_tensor(t).to(dev)  # noqa: E731
        self._X, self._y = move(bundle.X_train), move(bundle.y_train)
        self._Xv, self._yv = move(bundle.X_val), move(bundle.y_val)
        self.task, self.num_classes = bundle.task, int(bundle.num_classes)
        self.monitor = (
            monitor if len(self._Xv) > 0 or not monitor.startswith("val_") else "train_loss"
        )
        self._eval_bs = int(eval_batch_size or max(4 * self.batch_size, 1024))
        # Parameters: one (K, P) tensor; each model tensor is a (K, *shape) view of its columns,
        # and its .grad a view of the same columns of one (K, P) gradient.
        named = list(self.template.named_parameters())
        self._pnames = [n for n, _ in named]
        self._offsets, total = [], 0
        for _, p in named:
            self._offsets.append((total, p.numel(), tuple(p.shape)))
            total += p.numel()
        self.flat = torch.zeros(K, total, device=dev)
        self.grad = torch.zeros(K, total, device=dev)
        self.params: dict[str, torch.Tensor] = {}
        grads: dict[str, torch.Tensor] = {}
        for name, (off, n, shape) in zip(self._pnames, self._offsets, strict=True):
            leaf = self.flat[:, off : off + n].view(K, *shape).detach().requires_grad_()
            leaf.grad = grads[name] = self.grad[:, off : off + n].view(K, *shape)
            self.params[name] = leaf
        l1_cols = [
            torch.full((n,), float(len(shape) > 1), device=dev) for _, n, shape in self._offsets
        ]
        self._l1_mask = torch.cat(l1_cols).unsqueeze(0)  # weights with ndim > 1, as l1_parameters
        self._bnames = [n for n, _ in self.template.named_buffers() if not n.startswith("output_")]
        tb = dict(self.template.named_buffers())
        self.buffers = {
            n: tb[n].unsqueeze(0).repeat(K, *[1] * tb[n].ndim).to(dev) for n in self._bnames
        }
        scale = None
        if getattr(self.template, "output_scale", None) is not None:
            scale = (self.template.output_offset.to(dev), self.template.output_scale.to(dev))
        program = compile_program(self.template)
        self.forward = BatchedForward(program, tuple(bundle.input_shape), scale)
        # Bytes of one member's first conv output per image (0: no conv), to size validation's
        # chunks (outputs()).
        convs = [step.module for step in program if step.kind == "conv"]
        hw = bundle.input_shape[-2] * bundle.input_shape[-1] if convs else 0
        self._map_bytes = convs[0].out_channels * hw * 4 if convs else 0
        # An MLP without batch norm trains with the hand-written backward (_population_dense.py);
        # everything else through autograd on self.forward.
        self._dense: DenseStep | None = None
        self._dense_masks: DropoutMasks | None = None
        # Packing (module doc): whether a padded unit's gradient is an exact zero on its own
        # (every activation maps 0 to 0), and the (K, P) mask of each member's own entries,
        # made when a member needs it.
        acts = [st.module for st in program if st.kind == "act" and st.module is not None]
        self._zero_at_zero = all(float(a(torch.zeros(1))[0]) == 0.0 for a in acts)
        self._own_mask: torch.Tensor | None = None
        self._mask_grads = False
        if dense_supported(program):
            self._dense = DenseStep(program, self.params, grads, scale)
            self._dense_masks = DropoutMasks(self._dense.mask_widths, K, self.batch_size, dev)
        self.optimizer = PopulationOptimizer(optimizer, self.flat, nesterov=nesterov)
        col = lambda v: torch.full((K, 1), v, device=dev)  # noqa: E731
        self._keep, self._smoothing, self._l1 = col(1.0), col(0.0), col(0.0)
        self._clip_norm, self._clip_value = col(math.inf), col(math.inf)
        self.loss = MemberLoss(loss, self.task, self._smoothing)
        self._bad = torch.zeros(K, dtype=torch.bool, device=dev)
        self.best_flat = self.flat.clone()
        self.best_buffers = {n: b.clone() for n, b in self.buffers.items()}
        self._seed = int(seed)
        self._gen = torch.Generator(device=dev).manual_seed(int(seed))
        self._rows = batch_sizes(len(self._X), self.batch_size)
        self.steps_per_epoch = len(self._rows)
        self.members: list[Member | None] = [None] * K
        self._warned = False
        self._hi = 0  # the prefix of slots the next epoch trains (highest running slot + 1)
        self._stale = True  # whether the slots changed since _refresh_flags
        self._views: dict[int, _Prefix] = {}
        # The widest forward the last epoch ran (members along the batched dimension): a
        # measure of work, read by the tests.
        self.last_width = 0

    # ---- slots ------------------------------------------------------------------------------

    def _build(self, params: dict[str, Any], seed: int) -> nn.Module:
        """The builder's model with ``params`` initialised as a trial seeded ``seed`` is
        (``torch.manual_seed(seed)`` then build, as ``run_training``); global RNG kept."""
        state = torch.random.get_rng_state()
        try:
            # the CPU generator only (where build() initialises): torch.manual_seed also seeds
            # every accelerator's, 0.1 ms a call, for weights it does not draw
            torch.default_generator.manual_seed(seed)
            return dataclasses.replace(self.spec, params=params).build()
        finally:
            torch.random.set_rng_state(state)

    def member_spec(self, k: int) -> ModelSpec:
        """The ModelSpec of member ``k``'s trial (its own dropout rate)."""
        member = self._member(k)
        params = dict(self.spec.params if member.model_params is None else member.model_params)
        if self._has_dropout:
            params["dropout"] = member.settings.dropout
        return dataclasses.replace(self.spec, params=params)

    def fits(self, model_params: dict[str, Any]) -> str:
        """Why a member of shape ``model_params`` cannot be packed into this population ("" when
        it can): only on the dense path, with as many parameters, each no larger along any
        dimension than the population's (a narrower MLP of the same depth). Builds no model
        when ``model_params`` are the population's own."""
        params = {k: v for k, v in model_params.items() if k != "dropout"}
        if params == {k: v for k, v in self.spec.params.items() if k != "dropout"}:
            return ""
        if self._dense is None:
            return "only an MLP without batch norm (the dense path) packs widths"
        model = self._build({**params, **({"dropout": 0.5} if self._has_dropout else {})}, 0)
        shapes = [tuple(p.shape) for p in model.parameters()]
        if len(shapes) != len(self._offsets):
            return "a different number of layers"
        for shape, (_, _, mine) in zip(shapes, self._offsets, strict=True):
            if len(shape) != len(mine) or any(a > b for a, b in zip(shape, mine, strict=True)):
                return f"parameter shape {shape} does not fit in {mine}"
        if not _same_layers(model, self.template):
            return "different layers"
        return ""

    def _member(self, k: int) -> Member:
        member = self.members[k]
        if member is None:
            raise IndexError(f"population slot {k} is empty")
        return member

    @torch.no_grad()
    def replace_member(
        self,
        k: int,
        settings: MemberSettings,
        seed: int,
        model_params: dict[str, Any] | None = None,
    ) -> Member:
        """Put a new trial into slot ``k``: fresh weights (init seeded ``seed``), optimiser state,
        settings, epoch counter, schedule and history; the other members are untouched.
        ``model_params``: the member's own model params when it is narrower than the
        population (packing, see the module doc and :meth:`fits`). Call between epochs."""
        if not 0 <= k < self.size:
            raise IndexError(f"slot {k} is outside a population of {self.size}")
        if settings.dropout > 0 and not self._has_dropout:
            raise ValueError(f"builder {self.spec.builder!r} has no dropout parameter")
        own = None
        if model_params is not None:
            own = {n: v for n, v in model_params.items() if n != "dropout"}
            if own == {n: v for n, v in self.spec.params.items() if n != "dropout"}:
                own = None
            else:
                why = self.fits(own)
                if why:
                    raise ValueError(f"this member cannot be packed into the population: {why}")
        params = dict(self.spec.params if own is None else own)
        if self._has_dropout:
            params["dropout"] = settings.dropout
        model = self._build(params, seed)
        self._load_row(k, model)
        self._set_own_mask(k, model if own is not None else None)
        self.best_flat[k] = self.flat[k]
        for n in self._bnames:
            self.best_buffers[n][k] = self.buffers[n][k]
        self.optimizer.set_member(k, settings.optim_values())
        self._keep[k] = 1.0 - settings.dropout
        self._smoothing[k] = settings.label_smoothing
        self._l1[k] = settings.l1
        self._clip_norm[k] = inf_or(settings.clip_grad_norm)
        self._clip_value[k] = inf_or(settings.clip_grad_value)
        self._bad[k] = False
        member = Member(settings, int(seed), model_params=own)
        holder = _LR(settings.lr)
        member.schedule = LRSchedule(
            settings.schedule,
            holder,
            steps_per_epoch=self.steps_per_epoch,  # type: ignore[arg-type]
            epochs=int(settings.epochs),
            monitor=self.monitor,
        )
        member.schedule.apply()
        member.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        # Its own dropout stream (trial seed and population seed): its masks never depend on
        # which other members share the population.
        member.dropout_generator = torch.Generator(device=self.device).manual_seed(
            (int(seed) * 1_000_003 + self._seed) % 2**63
        )
        member.monitor = Monitor(self.monitor)
        es = settings.early_stopping
        if es is not None and (len(self._Xv) > 0 or not es.monitor.startswith("val_")):
            member.early = EarlyStopping(
                es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta
            )
        self.members[k] = member
        self._stale = True  # the flags are set again before the next epoch
        return member

    @torch.no_grad()
    def copy_member(self, src: int, dst: int) -> None:
        """Slot ``dst`` takes slot ``src``'s current weights, buffers and optimiser state (PBT's
        exploit step); ``dst`` keeps its own settings, epoch count, history, best epoch and
        best weights. Call between epochs."""
        if self._member(src).model_params != self._member(dst).model_params:
            raise ValueError("copy_member needs two members of the same shape")
        if src == dst:
            return
        self.flat[dst] = self.flat[src]
        for n in self._bnames:
            self.buffers[n][dst] = self.buffers[n][src]
        self.optimizer.copy_state(src, dst)
        self._bad[dst] = self._bad[src]

    @torch.no_grad()
    def move_member(self, src: int, dst: int) -> None:
        """Move member ``src`` to slot ``dst`` (empty or ended) whole (weights, buffers, best
        weights, optimiser state and settings, generators, schedule, history): it goes on
        exactly as it would have in ``src``. Moving high members down keeps the trained prefix
        short. Call between epochs."""
        member = self._member(src)
        old = self.members[dst]
        if src == dst or (old is not None and old.running):
            raise ValueError(f"population slot {dst} holds a running member")
        self.flat[dst] = self.flat[src]
        self.best_flat[dst] = self.best_flat[src]
        for n in self._bnames:
            self.buffers[n][dst] = self.buffers[n][src]
            self.best_buffers[n][dst] = self.best_buffers[n][src]
        values = self.optimizer._values[src]
        assert values is not None
        self.optimizer.set_values(dst, values)
        self.optimizer.copy_state(src, dst)
        for col in (self._keep, self._smoothing, self._l1, self._clip_norm, self._clip_value):
            col[dst] = col[src]
        if self._own_mask is not None:
            self._own_mask[dst] = self._own_mask[src]
        self._bad[dst] = self._bad[src]
        self.members[dst], self.members[src] = member, None
        self._stale = True  # the flags are set again before the next epoch

    @torch.no_grad()
    def adopt_member(self, source: Population, src: int, dst: int) -> Member:
        """Move member ``src`` of ``source``, a population of a narrower MLP with the same
        optimiser and batch size, into slot ``dst`` (empty or ended) of this one, whole, as
        :meth:`move_member` does within one population: its weights, best weights and optimiser
        state (their padding is exact zeros, so ``source``'s tensors fill the leading blocks of
        this one's), settings, generators, schedule and history. It goes on exactly as it
        would have in ``source`` (its dropout masks keep being drawn at its own widths); its
        ``source`` slot is left empty. The executor widens a group this way. Call between
        epochs."""
        member = source._member(src)
        old = self.members[dst]
        if old is not None and old.running:
            raise ValueError(f"population slot {dst} holds a running member")
        same = (
            source.optimizer.kind == self.optimizer.kind
            and source.optimizer.nesterov == self.optimizer.nesterov
            and source.batch_size == self.batch_size
            and source.monitor == self.monitor
        )
        if not same:
            raise ValueError("adopt_member needs the same optimiser, batch size and monitor")
        own = member.model_params
        if own is None:
            own = {n: v for n, v in source.spec.params.items() if n != "dropout"}
        why = self.fits(own)
        if why or self._bnames:
            raise ValueError(f"this member cannot be packed into the population: {why}")
        if own == {n: v for n, v in self.spec.params.items() if n != "dropout"}:
            own = None
        pairs = [(self.flat, source.flat), (self.best_flat, source.best_flat)]
        theirs, mine = source.optimizer.state_dict(), self.optimizer.state_dict()
        pairs += [(mine[name], theirs[name]) for name in ("buf", "exp_avg", "sq") if name in mine]
        for to, frm in pairs:
            _embed(to[dst], self._offsets, frm[src], source._offsets)
        if own is None:
            self._set_own_mask(dst, None)
        else:
            if self._own_mask is None:
                self._own_mask = torch.ones_like(self.flat)
            their_mask = (
                source._own_mask[src]
                if source._own_mask is not None
                else torch.ones_like(source.flat[src])
            )
            _embed(self._own_mask[dst], self._offsets, their_mask, source._offsets)
        self.optimizer.steps[dst] = source.optimizer.steps[src]
        values = source.optimizer._values[src]
        assert values is not None
        self.optimizer.set_values(dst, values)
        for to_col, from_col in zip(self._columns(), source._columns(), strict=True):
            to_col[dst] = from_col[src].to(to_col.device)
        self._bad[dst] = source._bad[src]
        member.model_params = own
        self.members[dst], source.members[src] = member, None
        source._stale = self._stale = True
        return member

    def _columns(self) -> tuple[torch.Tensor, ...]:
        """The per-member ``(K, 1)`` settings columns."""
        return (self._keep, self._smoothing, self._l1, self._clip_norm, self._clip_value)

    @torch.no_grad()
    def update_member(self, k: int, **changes: Any) -> MemberSettings:
        """Change member ``k``'s shape-keeping settings in place (``lr``, ``weight_decay``,
        ``momentum``, ``betas``, ``eps``, ``alpha``, ``dropout``, ``label_smoothing``, ``l1``,
        clipping) while it keeps its weights, optimiser state and schedule position (a new
        ``lr`` becomes the schedule's base rate). Returns the new settings."""
        member = self._member(k)
        # a member's optimiser state is its own optimiser's: the kind stays with the member
        fixed = {"schedule", "epochs", "early_stopping", "optimizer", "nesterov"} & set(changes)
        if fixed:
            raise ValueError(f"update_member cannot change {', '.join(sorted(fixed))}")
        settings = dataclasses.replace(member.settings, **changes)
        if settings.dropout > 0 and not self._has_dropout:
            raise ValueError(f"builder {self.spec.builder!r} has no dropout parameter")
        member.settings = settings
        self.optimizer.set_values(k, settings.optim_values())
        self._keep[k] = 1.0 - settings.dropout
        self._smoothing[k] = settings.label_smoothing
        self._l1[k] = settings.l1
        self._clip_norm[k] = inf_or(settings.clip_grad_norm)
        self._clip_value[k] = inf_or(settings.clip_grad_value)
        if "lr" in changes:
            member.schedule.base_lrs = [float(settings.lr)]
            member.schedule.apply()
        self._stale = True  # the flags are set again before the next epoch
        return settings

    def stop_member(self, k: int, status: str = "pruned", reason: str = "") -> None:
        """End member ``k`` (the tuner pruned it, say); its slot stops updating until refilled."""
        member = self._member(k)
        if member.running:
            member.status, member.reason = status, reason or status

    def _refresh_flags(self) -> None:
        self._stale = False
        running = self.running()
        self._hi = running[-1] + 1 if running else 0
        live = [self.members[k].settings for k in running]  # type: ignore[union-attr]
        self._any_dropout = any(s.dropout > 0 for s in live)
        # Dropout masks are drawn only for the members with dropout (None: all of them).
        rows = [
            k
            for k, m in enumerate(self.members)
            if m is not None and m.running and m.settings.dropout > 0
        ]
        self._drop_rows = torch.tensor(rows, dtype=torch.long, device=self.flat.device)
        self._drop_gens = [self.members[k].dropout_generator for k in rows]  # type: ignore[union-attr]
        if self._dense_masks is not None and self._dense_masks.widths:
            keep = [1.0 - self.members[k].settings.dropout for k in rows]  # type: ignore[union-attr]
            own = [self._own_widths(k) for k in rows]
            self._dense_masks.set_members(rows, self._drop_gens, keep, hi=self._hi, own_widths=own)
        packed = any(self.members[k].model_params is not None for k in running)  # type: ignore[union-attr]
        self._mask_grads = packed and not self._zero_at_zero
        self.loss.use_smoothing = any(s.label_smoothing > 0 for s in live)
        self._any_l1 = any(s.l1 > 0 for s in live)
        self._any_norm = any(s.clip_grad_norm is not None for s in live)
        self._any_value = any(s.clip_grad_value is not None for s in live)

    def _load_row(self, k: int, model: nn.Module) -> None:
        params = list(model.parameters())
        buffers = [b for n, b in model.named_buffers() if not n.startswith("output_")]
        if len(params) != len(self._pnames) or len(buffers) != len(self._bnames):
            raise ValueError("member model does not match the population's architecture")
        for p, (off, n, shape) in zip(params, self._offsets, strict=True):
            if tuple(p.shape) == shape:
                self.flat[k, off : off + n] = p.detach().reshape(-1).to(self.flat.device)
                continue
            if p.ndim != len(shape) or any(a > b for a, b in zip(p.shape, shape, strict=True)):
                raise ValueError(f"member parameter shape {tuple(p.shape)} != {shape}")
            # a packed member: its tensor is the leading block, the padding exact zeros
            row = self.flat[k, off : off + n].view(shape)
            row.zero_()
            row[_block(p.shape)] = p.detach().to(self.flat.device)
        for b, name in zip(buffers, self._bnames, strict=True):
            self.buffers[name][k] = b.to(self.flat.device)

    def _set_own_mask(self, k: int, model: nn.Module | None) -> None:
        """Mark slot ``k``'s own entries (packing): all of its row, or ``model``'s blocks.
        The mask is made the first time a packed member needs it."""
        if model is None and self._own_mask is None:
            return
        if self._own_mask is None:
            self._own_mask = torch.ones_like(self.flat)
        row = self._own_mask[k]
        if model is None:
            row.fill_(1.0)
            return
        row.zero_()
        for p, (off, n, shape) in zip(model.parameters(), self._offsets, strict=True):
            row[off : off + n].view(shape)[_block(p.shape)] = 1.0

    def _own_widths(self, k: int) -> list[int] | None:
        """A packed member's own width of each dropout layer (None: the population's)."""
        member = self.members[k]
        if member is None or member.model_params is None or self._dense is None:
            return None
        out = []
        for name in self._dense.mask_params:
            off, n, shape = self._offsets[self._pnames.index(name)]
            rows = self._own_mask[k, off : off + n].view(shape)[:, 0]  # type: ignore[index]
            out.append(int(rows.sum().item()))
        return out

    @torch.no_grad()
    def member_module(self, k: int, *, best: bool = True) -> nn.Module:
        """Member ``k`` as an ordinary model of the builder (its best weights by ``monitor``
        when ``best`` and it has a best epoch), ready for ``tunelab.models.save_model``."""
        member = self._member(k)
        model = dataclasses.replace(self.member_spec(k)).build()
        use_best = best and member.best_epoch is not None
        flat = self.best_flat if use_best else self.flat
        buffers = self.best_buffers if use_best else self.buffers
        for p, (off, n, shape) in zip(model.parameters(), self._offsets, strict=True):
            p.copy_(flat[k, off : off + n].reshape(shape)[_block(p.shape)])
        named = [b for n, b in model.named_buffers() if not n.startswith("output_")]
        for b, name in zip(named, self._bnames, strict=True):
            b.copy_(buffers[name][k])
        return model.to(self.device)

    # ---- training ---------------------------------------------------------------------------

    def running(self) -> list[int]:
        return [k for k, m in enumerate(self.members) if m is not None and m.running]

    def fit(self, max_epochs: int | None = None) -> list[FitResult | None]:
        """Train until no member is running (or ``max_epochs`` population epochs)."""
        epochs = 0
        while self.running() and (max_epochs is None or epochs < max_epochs):
            self.train_epoch()
            epochs += 1
        return [m.result() if m is not None else None for m in self.members]

    def train_epoch(self) -> dict[int, dict[str, Any]]:
        """One epoch of every running member (train, validate, judge, keep best, schedule);
        returns ``{slot: metrics}`` for the members that ran it."""
        live = self.running()
        if not live:
            return {}
        t0 = time.perf_counter()
        if self._stale or live[-1] + 1 != self._hi:  # changed, or a member was stopped
            self._refresh_flags()
        hi = self._hi
        view = self._view(hi)
        order, lrs = self._epoch_plan(live, hi)
        running = torch.zeros(hi, dtype=torch.bool)
        running[live] = True
        running = running.to(self.device)
        losses, norms = self._train_steps(order, lrs, running, view)
        rows = torch.tensor(self._rows, dtype=torch.float64, device=self.device).unsqueeze(1)
        train_loss = (torch.stack(losses).double() * rows).sum(0) / rows.sum()
        grad_norm = torch.stack(norms).double().mean(0)
        host = torch.cat([train_loss, grad_norm, self._bad[:hi].double()]).tolist()
        K = hi  # host holds hi entries per quantity
        val = self._validate(view) if len(self._Xv) > 0 else None
        elapsed = time.perf_counter() - t0
        out, improved = {}, []
        for k in live:
            member = self.members[k]
            assert member is not None
            member.epoch += 1
            member.wall_time_s += elapsed
            metrics: dict[str, Any] = {"epoch": member.epoch, "train_loss": host[k]}
            if val is not None and math.isfinite(host[k]):
                metrics.update(val[k])
            metrics["lr"] = float(member.schedule.optimizer.param_groups[0]["lr"])
            metrics["epoch_time_s"] = elapsed
            member.history.append(metrics)
            member.signals.append(
                {"epoch": member.epoch, "train_loss": host[k], "grad_norm": host[K + k]}
            )
            out[k] = metrics
            if self._judge(k, member, metrics, bad=host[2 * K + k] > 0):
                continue
            value = metrics.get(self.monitor)
            if value is not None and member.monitor.update(float(value), member.epoch):
                member.best_epoch, member.best_metrics = member.epoch, dict(metrics)
                improved.append(k)
            if member.early is not None:
                stop, why = member.early.update_and_check(
                    float(metrics[member.early.metric]), member.epoch
                )
                if stop:
                    member.status, member.reason = "early_stopped", why
            member.schedule.step_epoch(metrics)
            if member.running and member.epoch >= member.settings.epochs:
                member.status, member.reason = (
                    "completed",
                    f"ran all {member.settings.epochs} epochs",
                )
        if improved:
            idx = torch.tensor(improved, device=self.device)
            self.best_flat[idx] = self.flat[idx]
            for n in self._bnames:
                self.best_buffers[n][idx] = self.buffers[n][idx]
        self._stale = True  # the flags are set again before the next epoch
        return out

    def _judge(self, k: int, member: Member, metrics: dict[str, Any], *, bad: bool) -> bool:
        verdict = ("nan", f"loss became NaN/inf in epoch {member.epoch}") if bad else None
        verdict = verdict or self.judge(member.epoch, metrics, member.history)
        if verdict is None:
            return False
        member.status, member.reason = verdict[0], verdict[1]
        member.sickness = verdict
        return True

    def _view(self, hi: int) -> _Prefix:
        """The ``[:hi]`` prefix views of the slots' tensors (made once per ``hi``)."""
        view = self._views.get(hi)
        if view is None:
            view = self._views[hi] = _Prefix(self, hi)
        return view

    def _epoch_plan(self, live: list[int], hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member permutations ``(hi, n)`` (each member's own generator, as the Trainer's
        ``torch.randperm(n, generator)``) and learning rates ``(steps, hi, 1)`` from each
        member's LRSchedule (the Trainer's code, stepped through the epoch)."""
        n, dev = len(self._X), self.device
        idle = torch.arange(n, device=dev)
        orders, table = [], [[0.0] * hi for _ in range(self.steps_per_epoch)]
        for k in range(hi):
            member = self.members[k]
            if member is None or not member.running:
                orders.append(idle)
                continue
            orders.append(torch.randperm(n, generator=member.generator, device=dev))
            schedule, group = member.schedule, member.schedule.optimizer.param_groups[0]
            for s in range(self.steps_per_epoch):
                table[s][k] = group["lr"]
                schedule.step_batch()
        lrs = torch.tensor(table, dtype=self.flat.dtype, device=dev).unsqueeze(-1)
        return torch.stack(orders), lrs

    def _train_steps(
        self, order: torch.Tensor, lrs: torch.Tensor, running: torch.Tensor, view: _Prefix
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        bs, grad, flat = self.batch_size, view.grad, view.flat
        K, n = order.shape  # K is hi here: the prefix of slots this epoch trains
        l1 = self._l1[:K] * self._l1_mask if self._any_l1 else None
        clip_norm = self._clip_norm[:K] if self._any_norm else None
        clip_value = self._clip_value[:K] if self._any_value else None
        bn = bool(self._bnames)
        dense, masks = view.dense, self._dense_masks
        own = self._own_mask[:K] if self._mask_grads and self._own_mask is not None else None
        # per-epoch prefix copies: they read the columns set since the last epoch
        optimizer = self.optimizer.prefix(K)
        loss_fn = self.loss.prefix(K)
        bad = self._bad[:K]
        self.last_width = K
        draw = masks is not None and masks.active
        # This epoch's batches in one gather (each step's is a view of it; index_select of the
        # flat order is several times faster than X[order] here), their views, rates and Adam's
        # factors for every step at once (split once, not sliced per step), and a "stopped" mask
        # (not running or sick) that only ever gains members within the epoch.
        flat_order = order.reshape(-1)
        X = self._X.index_select(0, flat_order).view(K, n, *self._X.shape[1:])
        y = self._y.index_select(0, flat_order).view(K, n, *self._y.shape[1:])
        if dense is not None:
            X = X.view(K, n, -1)
        xs, ys = X.split(bs, 1), y.split(bs, 1)
        factors = optimizer.epoch_factors(lrs)
        step_factors = [None] * len(xs) if factors is None else list(zip(*factors, strict=True))
        stopped = ~running.unsqueeze(1) | bad.unsqueeze(1)
        # On CPU a look at K flags is free: while every member is healthy and running, the
        # step passes ok=None and skips the masking arithmetic. On an accelerator that look
        # would be a host sync per step, so the mask is always applied there.
        on_cpu = self.device.type == "cpu"
        all_ok = on_cpu and not bool(stopped.any())
        if draw:
            masks.start_epoch(n)  # type: ignore[union-attr]
        losses, norms = [], []
        for xb, yb, lr, fac in zip(xs, ys, lrs.unbind(0), step_factors, strict=True):
            if dense is not None:
                # no autograd: the gradient of every parameter is written into grad
                out, tape = dense.forward(
                    xb,
                    masks.draw(xb.shape[1]) if draw else None,  # type: ignore[union-attr]
                )
                loss, dout = loss_fn.value_and_grad(out, yb)
                dense.backward(dout, tape)
                saved = None
            else:
                saved = self._autograd_step(xb, yb, bn, view, loss_fn)
                loss = saved.pop()
            if own is not None:
                grad.mul_(own)  # a packed member's padding (activation with f(0) != 0)
            if l1 is not None:
                grad.add_(l1 * torch.sign(flat))
            norm = torch.linalg.vector_norm(grad, dim=1)
            # loss + norm is finite iff both are (a sum overflowing to inf is sick anyway); on
            # CPU one sum read on the host says whether all K are (isfinite on K values is
            # five ops inside)
            total = loss.detach() + norm
            if all_ok and math.isfinite(float(total.sum())):
                ok = None
            else:
                stopped |= ~torch.isfinite(total).unsqueeze(1)
                ok, all_ok = ~stopped, False
            clip_(grad, norm, clip_norm, clip_value)
            optimizer.step(grad, lr, ok, fac)
            if saved and ok is not None:  # the masked members' batch norm statistics
                with torch.no_grad():
                    for name, old in zip(self._bnames, saved, strict=True):
                        buf = view.buffers[name]
                        mask = ok.reshape(-1, *[1] * (buf.ndim - 1))
                        buf.copy_(torch.where(mask, buf, old))
            if dense is None:
                grad.zero_()  # autograd accumulates into the .grad views
            losses.append(loss.detach())
            norms.append(norm)
        bad |= stopped.squeeze(1) & running
        return losses, norms

    def _autograd_step(
        self, xb: torch.Tensor, yb: torch.Tensor, bn: bool, view: _Prefix, loss_fn: MemberLoss
    ) -> list[torch.Tensor]:
        """Forward and backward through autograd (the .grad views of ``grad`` receive the
        gradients); returns the buffers before the step (batch norm), then the loss."""
        saved = [view.buffers[n].clone() for n in self._bnames] if bn else []
        out = self.forward(
            view.params,
            view.buffers,
            xb,
            training=True,
            keep=self._keep[: view.hi] if self._any_dropout else None,
            generator=self._gen,
            drop_rows=self._drop_rows,
            drop_generators=self._drop_gens,
        )
        loss = loss_fn(out, yb)
        self._backward(loss.sum())
        return [*saved, loss]

    def _backward(self, total: torch.Tensor) -> None:
        if self._warned:
            total.backward()
            return
        with warnings.catch_warnings():  # the .grad views are strided like their parameters
            warnings.filterwarnings("ignore", message="grad and param do not obey")
            total.backward()
        self._warned = True

    @torch.no_grad()
    def outputs(self, X: torch.Tensor, hi: int | None = None) -> torch.Tensor:
        """Every member's eval-mode outputs ``(K, N, out)`` for inputs ``X`` seen by all
        (``(hi, N, out)``: the first ``hi`` slots only)."""
        X = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        view = self._view(self.size if hi is None else hi)
        chunks, bs = [], self._eval_bs
        if self._map_bytes:
            # the packed maps of a chunk within _EVAL_MAP_BYTES: validation of the digits CNN,
            # K = 16, 360 rows, took 16 ms in one chunk, 5.7 ms in chunks of 128 (6.1 ms at 64,
            # 7.8 ms at 256; Zen 5, 1 MiB L2 a core)
            bs = min(bs, max(1, _EVAL_MAP_BYTES // (self._map_bytes * view.hi)))
        for i in range(0, len(X), bs):
            x = X[i : i + bs]
            if view.dense is not None:
                # the training step's forward without dropout (in-place activations, the head
                # as W h^T): 0.75x the autograd program's time (K = 16, 360 rows, width 64)
                flat = x.reshape(1, len(x), -1).expand(view.hi, -1, -1)
                chunks.append(view.dense.forward(flat, None)[0])
                continue
            chunks.append(
                self.forward(view.params, view.buffers, x, training=False, shared_input=True)
            )
        return torch.cat(chunks, dim=1) if len(chunks) > 1 else chunks[0]

    def _validate(self, view: _Prefix) -> list[dict[str, float]]:
        """Validation metrics of the first ``view.hi`` slots."""
        outputs = self.outputs(self._Xv, view.hi)
        targets = self._yv.unsqueeze(0).expand(view.hi, *self._yv.shape)
        loss_fn = self.loss.prefix(view.hi)
        with torch.no_grad():
            losses = loss_fn(outputs, targets)
        scores = member_scores(outputs, self._yv, losses, self.task, self.num_classes)
        return [{f"val_{k}": v for k, v in s.items()} for s in scores]

    def member_result(self, k: int) -> FitResult:
        """Member ``k``'s trial as the Trainer would report it."""
        return self._member(k).result()


class _Prefix:
    """The first ``hi`` slots of a population as views of its tensors (no copies): parameter
    leaves whose ``.grad`` are views of the same rows of the gradient, buffers, and a dense step
    on those views. The optimiser and the ``(K, 1)`` columns are sliced per epoch instead (a
    few views), so flags such as the optimiser's ``_has_wd`` are read fresh."""

    def __init__(self, pop: Population, hi: int) -> None:
        self.hi = hi
        self.flat, self.grad = pop.flat[:hi], pop.grad[:hi]
        self.params: dict[str, torch.Tensor] = {}
        grads: dict[str, torch.Tensor] = {}
        for name, (off, n, shape) in zip(pop._pnames, pop._offsets, strict=True):
            leaf = self.flat[:, off : off + n].view(hi, *shape).detach().requires_grad_()
            leaf.grad = grads[name] = self.grad[:, off : off + n].view(hi, *shape)
            self.params[name] = leaf
        self.buffers = {n: b[:hi] for n, b in pop.buffers.items()}
        self.dense: DenseStep | None = None
        if pop._dense is not None:
            self.dense = DenseStep(pop.forward.steps, self.params, grads, pop._dense.output_scale)


# Validation's chunk of rows keeps an image program's first packed map (rows x members x
# C x H x W floats) within this many bytes.
_EVAL_MAP_BYTES = 4 << 20


def _block(shape: Sequence[int] | torch.Size) -> tuple[slice, ...]:
    """The leading block of a padded tensor that holds a packed member's tensor of ``shape``."""
    return tuple(slice(0, int(n)) for n in shape)


def _embed(
    to: torch.Tensor,
    to_offsets: Sequence[tuple[int, int, tuple[int, ...]]],
    frm: torch.Tensor,
    frm_offsets: Sequence[tuple[int, int, tuple[int, ...]]],
) -> None:
    """Write the flat row ``frm`` (tensors at ``frm_offsets``) into the leading blocks of the
    flat row ``to`` (tensors at ``to_offsets``, each at least as large); the rest of ``to`` is
    zeroed."""
    for (t_off, t_n, t_shape), (f_off, f_n, f_shape) in zip(to_offsets, frm_offsets, strict=True):
        block = to[t_off : t_off + t_n].view(t_shape)
        block.zero_()
        block[_block(f_shape)] = frm[f_off : f_off + f_n].view(f_shape).to(to.device)


def _same_layers(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models have the same layers in the same order, shapes aside (the same
    activations with the same settings: their ``repr``)."""

    def layers(model: nn.Module) -> list[str]:
        return [
            type(m).__name__ if isinstance(m, nn.Linear) else repr(m)
            for m in model.modules()
            if not list(m.children())
        ]

    return layers(a) == layers(b)


def population_from_trials(
    spec: ModelSpec,
    bundle: Any,
    trials: Sequence[tuple[TrainConfig, dict[str, Any], int]],
    **kwargs: Any,
) -> Population:
    """A full population of ``(train config, model params, seed)`` trials of one
    :func:`group_key`; shared settings come from the first trial."""
    mixed = kwargs.get("optimizer") == MIXED
    keys = {group_key(t, p, mixed=mixed) for t, p, _ in trials}
    if len(keys) != 1:
        raise ValueError("trials of one population must share group_key (optimizer, batch size...)")
    first = trials[0][0]
    kwargs.setdefault("optimizer", first.optimizer)
    kwargs.setdefault("batch_size", int(first.batch_size))
    kwargs.setdefault("nesterov", bool(first.nesterov))
    kwargs.setdefault("loss", first.loss)
    kwargs.setdefault("monitor", first.monitor)
    kwargs.setdefault("device", first.device)
    pop = Population(spec, bundle, len(trials), **kwargs)
    for k, (train, params, seed) in enumerate(trials):
        pop.replace_member(k, MemberSettings.from_config(train, params), seed)
    return pop
