"""A vectorised optimiser step for a population: K members' parameters in one ``(K, P)`` tensor.

Every member's parameters live in one row of ``flat`` (the model's tensors are views of it) and
its gradients in the same row of ``grad``; per-member hyperparameters are ``(K, 1)`` columns, so
one step is a handful of ops on the whole population whatever K is, with no Python loop over
members. The formulas are torch's own single-tensor updates (``torch.optim.SGD``, ``Adam``,
``AdamW``, ``RMSprop``, ``Adagrad`` with the options the Trainer uses, see ``_optim.py``); the
tests compare each member with a separate ``torch.optim`` run (max abs diff <= 1e-5).

A member whose ``ok`` entry is False this step keeps its parameters *and* optimiser state
exactly (zero gradient, zero rate): a sick, finished or empty slot never moves and never
leaks into the others, which only ever share elementwise ops with it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

# torch.optim's default eps per optimiser (None in MemberSettings means this one).
DEFAULT_EPS = {"sgd": 0.0, "adam": 1e-8, "adamw": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10}


@dataclass
class OptimValues:
    """One member's optimiser hyperparameters (what varies per member)."""

    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float | None = None
    alpha: float = 0.99  # RMSprop's smoothing constant


class PopulationOptimizer:
    """The update of ``kind`` applied to all K rows of ``flat`` at once.

    Args:
        kind: sgd, adam, adamw, rmsprop or adagrad (shared by the population).
        flat: ``(K, P)`` parameters, updated in place.
        nesterov: SGD's Nesterov momentum (a group setting, as in the Trainer's config).
    """

    def __init__(self, kind: str, flat: torch.Tensor, *, nesterov: bool = False) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; expected one of {', '.join(OPTIMIZERS)}")
        self.kind, self.flat, self.nesterov = kind, flat, nesterov
        K, dev = flat.shape[0], flat.device

        def column(value: float = 0.0) -> torch.Tensor:
            return torch.full((K, 1), value, dtype=flat.dtype, device=dev)

        self.weight_decay, self.momentum = column(), column()
        self.beta1, self.beta2, self.eps, self.alpha = (
            column(0.9),
            column(0.999),
            column(),
            column(),
        )
        self.one_minus_beta1, self.one_minus_beta2, self.one_minus_alpha = (
            column(),
            column(),
            column(),
        )
        self.steps = torch.zeros(K, dtype=torch.float64, device=dev)  # per-member step counts
        self._has_wd = False
        # State buffers, shaped like flat; created for the kinds that need them.
        zeros = torch.zeros_like
        self.buf = zeros(flat) if kind == "sgd" else None  # momentum buffer
        self.exp_avg = zeros(flat) if kind in ("adam", "adamw") else None
        self.sq = zeros(flat) if kind in ("adam", "adamw", "rmsprop", "adagrad") else None
        self._values: list[OptimValues | None] = [None] * K

    # ---- per-member settings -------------------------------------------------------------------

    @torch.no_grad()
    def set_member(self, k: int, values: OptimValues) -> None:
        """Give slot ``k`` new hyperparameters and fresh (zero) optimiser state."""
        self.set_values(k, values)
        self.steps[k] = 0
        for state in (self.buf, self.exp_avg, self.sq):
            if state is not None:
                state[k].zero_()

    @torch.no_grad()
    def set_values(self, k: int, values: OptimValues) -> None:
        """Change slot ``k``'s hyperparameters in place; its optimiser state is kept."""
        self._values[k] = values
        eps = DEFAULT_EPS[self.kind] if values.eps is None else float(values.eps)
        self.weight_decay[k] = float(values.weight_decay)
        self.momentum[k] = float(values.momentum) if self.kind == "sgd" else 0.0
        self.beta1[k], self.beta2[k] = float(values.beta1), float(values.beta2)
        self.one_minus_beta1[k] = 1.0 - float(values.beta1)
        self.one_minus_beta2[k] = 1.0 - float(values.beta2)
        self.alpha[k], self.one_minus_alpha[k] = float(values.alpha), 1.0 - float(values.alpha)
        self.eps[k] = eps
        self._has_wd = bool((self.weight_decay != 0).any())

    @torch.no_grad()
    def copy_state(self, src: int, dst: int) -> None:
        """Slot ``dst`` takes slot ``src``'s optimiser state (step count, moments, buffers)."""
        self.steps[dst] = self.steps[src]
        for state in (self.buf, self.exp_avg, self.sq):
            if state is not None:
                state[dst] = state[src]

    def prefix(self, hi: int) -> PopulationOptimizer:
        """This optimiser on the first ``hi`` rows only: a shallow copy whose parameters, state
        and columns are ``[:hi]`` views of this one's, so its steps update these rows in place
        and cost ``hi`` rows, not K (the population trains its live prefix)."""
        if hi == self.flat.shape[0]:
            return self
        view = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(view, name, value[:hi])
        return view

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"steps": self.steps}
        for name in ("buf", "exp_avg", "sq"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    # ---- the step ----------------------------------------------------------------------------

    @torch.no_grad()
    def epoch_factors(self, lrs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Adam's per-step ``(step_size, bias_correction2_sqrt)``, each ``(S, K, 1)``, for the
        ``S`` steps of an epoch at rates ``lrs`` ``(S, K, 1)``, computed at once (a member that
        stays ``ok`` is at step ``steps + s + 1``; a masked one moves by an exact zero anyway).
        None for the other optimisers. Pass row ``s`` to :meth:`step` as ``factors``."""
        if self.kind not in ("adam", "adamw"):
            return None
        S, dtype = lrs.shape[0], self.flat.dtype
        t = self.steps.unsqueeze(0) + torch.arange(
            1, S + 1, dtype=torch.float64, device=lrs.device
        ).unsqueeze(1)
        t = t.unsqueeze(-1)  # (S, K, 1)
        # Like torch, the bias corrections are computed in double, then used as floats.
        bc1 = 1 - self.beta1.double().unsqueeze(0) ** t
        bc2_sqrt = (1 - self.beta2.double().unsqueeze(0) ** t).sqrt().to(dtype)
        return (lrs.double() / bc1).to(dtype), bc2_sqrt

    @torch.no_grad()
    def step(
        self,
        grad: torch.Tensor,
        lr: torch.Tensor,
        ok: torch.Tensor,
        factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """One update of every member with ``ok`` (``(K, 1)`` bool) at learning rates ``lr``
        (``(K, 1)``); the other rows keep parameters and state bit for bit. ``factors``: this
        step's row of :meth:`epoch_factors` (Adam; computed here when None).

        In place and without ``torch.where`` on the ``(K, P)`` tensors: a masked member's
        gradient is zeroed and its rates are 0 (its decay factors 1), so each update adds an
        exact zero to its row; ``grad`` is used as scratch space.
        """
        p, kind = self.flat, self.kind
        okf = ok.to(p.dtype)
        # Clears a masked member's gradient, NaN/inf included, so 0 * grad stays 0. On CPU a
        # look at the K flags costs nothing and skips a pass when every member is ok; on an
        # accelerator it would be a host sync per step, so the pass always runs there.
        if p.device.type != "cpu" or not bool(ok.all()):
            grad.masked_fill_(~ok, 0.0)
        if kind == "adamw":
            if self._has_wd:
                p.mul_(1 - lr * okf * self.weight_decay)
        elif self._has_wd:
            grad.addcmul_(p, self.weight_decay * okf)
        if kind == "sgd":
            # torch: buf = d_p on the first step, else momentum * buf + d_p (dampening 0); a zero
            # buffer gives exactly that, and momentum 0 gives buf = d_p (plain SGD).
            lr_ok = lr * okf
            buf = self.buf
            torch.addcmul(grad, buf, torch.where(ok, self.momentum, 1.0), out=buf)
            if self.nesterov:
                grad.addcmul_(buf, self.momentum)
                p.addcmul_(grad, -lr_ok)
            else:
                p.addcmul_(buf, -lr_ok)
            return
        if kind in ("adam", "adamw"):
            if factors is None:
                step_size, bc2_sqrt = self.epoch_factors(lr.unsqueeze(0))  # type: ignore[misc]
                step_size, bc2_sqrt = step_size[0], bc2_sqrt[0]
            else:
                step_size, bc2_sqrt = factors
            self.steps.add_(okf.view(-1))
            sq = self.sq
            # beta * state + (1 - beta) * x as one lerp each; weight 0 keeps a masked row exactly
            self.exp_avg.lerp_(grad, self.one_minus_beta1 * okf)
            sq.lerp_(torch.mul(grad, grad, out=grad), self.one_minus_beta2 * okf)
            # torch: p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), computed here as
            # p -= (step_size * bc2_sqrt) * m / (sqrt(v) + eps * bc2_sqrt): the same update up to
            # float rounding, without an addcdiv whose (K, 1) operands broadcast over the (K, P)
            # output (4x slower on this CPU than a plain add)
            denom = torch.sqrt(sq, out=grad).add_(self.eps * bc2_sqrt)
            p.addcmul_(torch.div(self.exp_avg, denom, out=grad), step_size * bc2_sqrt * -okf)
            return
        self.steps.add_(okf.view(-1))
        lr_ok = lr * okf
        sq = self.sq
        if kind == "rmsprop":
            sq.mul_(torch.where(ok, self.alpha, 1.0))
            sq.addcmul_(grad, grad * self.one_minus_alpha)
        else:  # adagrad, lr_decay 0 and initial accumulator 0 as torch's defaults
            sq.addcmul_(grad, grad)
        denom = torch.sqrt(sq).add_(self.eps)
        p.addcmul_(grad.div_(denom), -lr_ok)


def clip_(
    grad: torch.Tensor,
    norms: torch.Tensor,
    max_norm: torch.Tensor | None,
    max_value: torch.Tensor | None,
) -> None:
    """Per-member ``clip_grad_norm_`` (``max_norm`` ``(K, 1)``, inf = off) or
    ``clip_grad_value_`` (``max_value`` ``(K, 1)``, inf = off) on the ``(K, P)`` gradients."""
    if max_norm is not None:
        # torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
        coef = (max_norm / (norms.unsqueeze(1) + 1e-6)).clamp(max=1.0)
        grad.mul_(coef)
    if max_value is not None:
        torch.clamp(grad, -max_value, max_value, out=grad)


def inf_or(value: float | None) -> float:
    return math.inf if value is None else float(value)
