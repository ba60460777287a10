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
# A population whose members may each use any of OPTIMIZERS (one update formula, per-member
# coefficients; see PopulationOptimizer).
MIXED = "mixed"

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
    kind: str | None = None  # the member's optimiser; None: the population's (required if mixed)
    nesterov: bool = False  # SGD's Nesterov momentum, per member in a mixed population


class PopulationOptimizer:
    """The update of ``kind`` applied to all K rows of ``flat`` at once.

    ``kind="mixed"``: each member brings its own optimiser (``OptimValues.kind``), so trials that
    differ only in the optimiser share one population instead of one each. Every supported
    update is then one formula with per-member ``(K, 1)`` coefficients, the same seven passes
    over ``(K, P)`` as the Adam step (see :meth:`_mixed_step`): a first moment
    ``m = lerp(m, g, w1)``, a second ``v = lerp(v, g^2, w2)`` and ``p -= rate * m / (sqrt(v) +
    e)``. Per kind, exact up to float rounding: Adam/AdamW as torch (``w1 = 1 - beta1``,
    ``w2 = 1 - beta2``, the bias corrections in ``rate`` and ``e``); SGD keeps ``(1 - mu) * buf``
    (``w1 = 1 - mu``, ``rate = lr / (1 - mu)``; Nesterov ``g + mu * buf``), ``v = 0`` and
    ``e = 1``; RMSprop ``m = g``, ``w2 = 1 - alpha``; Adagrad keeps the running *mean* of
    ``g^2`` (``w2 = 1/t``; ``sqrt(t)`` moved into ``rate`` and ``e``).

    Args:
        kind: sgd, adam, adamw, rmsprop, adagrad (shared by the population) or mixed.
        flat: ``(K, P)`` parameters, updated in place.
        nesterov: SGD's Nesterov momentum (a group setting, as in the Trainer's config; per
            member, ``OptimValues.nesterov``, when mixed).
    """

    def __init__(self, kind: str, flat: torch.Tensor, *, nesterov: bool = False) -> None:
        if kind not in OPTIMIZERS and kind != MIXED:
            raise ValueError(
                f"unknown optimizer {kind!r}; expected one of {', '.join(OPTIMIZERS)} or {MIXED}"
            )
        self.kind, self.flat, self.nesterov = kind, flat, nesterov and kind == "sgd"
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
        mixed = kind == MIXED
        # mixed: exp_avg is every member's first moment, sq its second (see the class doc)
        self.exp_avg = zeros(flat) if kind in ("adam", "adamw") or mixed else None
        self.sq = zeros(flat) if kind in ("adam", "adamw", "rmsprop", "adagrad") or mixed else None
        self._values: list[OptimValues | None] = [None] * K
        # Adam's bias corrections use these betas: the population's own, or in a mixed one
        # 0 for the members that are not Adam (1 - 0^t = 1: no correction)
        self.bias_beta1, self.bias_beta2 = self.beta1, self.beta2
        if mixed:
            self.bias_beta1, self.bias_beta2 = column(), column()
            self.l2, self.decoupled = column(), column()  # weight decay as L2 / as AdamW's
            self.m_gain, self.v_gain = column(1.0), column()  # lerp weights of m and v
            self.rate_mult, self.adagrad = column(1.0), column()
            self.nest, self.num_m = column(), column(1.0)  # numerator: nest * g + num_m * m
            self.scratch = zeros(flat)
            self._has_l2 = self._has_decoupled = self._has_nest = False

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
        if self.kind == MIXED:
            self._set_mixed(k, values)
            return
        if values.kind is not None and values.kind != self.kind:
            raise ValueError(f"a {values.kind} member in a {self.kind} population")
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

    def _set_mixed(self, k: int, values: OptimValues) -> None:
        """Slot ``k``'s coefficients of the mixed update for its own optimiser (class doc)."""
        kind = values.kind
        if kind not in OPTIMIZERS:
            raise ValueError(f"a mixed population needs each member's optimizer, got {kind!r}")
        self._values[k] = values
        wd, b1, b2 = float(values.weight_decay), float(values.beta1), float(values.beta2)
        eps = DEFAULT_EPS[kind] if values.eps is None else float(values.eps)
        self.l2[k], self.decoupled[k] = (0.0, wd) if kind == "adamw" else (wd, 0.0)
        adam = kind in ("adam", "adamw")
        self.bias_beta1[k], self.bias_beta2[k] = (b1, b2) if adam else (0.0, 0.0)
        self.nest[k], self.num_m[k], self.rate_mult[k], self.adagrad[k] = 0.0, 1.0, 1.0, 0.0
        self.eps[k] = eps
        if kind == "sgd":
            momentum = float(values.momentum)
            # m = (1 - mu) * torch's buf: a lerp like Adam's (buf = mu * buf + g; buf = g at
            # the first step, which a zero m gives), and p -= lr / (1 - mu) * m
            self.m_gain[k], self.v_gain[k], self.eps[k] = 1.0 - momentum, 0.0, 1.0
            if values.nesterov and momentum > 0:  # p -= lr * (g + mu / (1 - mu) * m)
                self.nest[k], self.num_m[k] = 1.0, momentum / (1.0 - momentum)
            else:
                self.rate_mult[k] = 1.0 / (1.0 - momentum)
        elif adam:
            self.m_gain[k], self.v_gain[k] = 1.0 - b1, 1.0 - b2
        elif kind == "rmsprop":
            self.m_gain[k], self.v_gain[k] = 1.0, 1.0 - float(values.alpha)
        else:  # adagrad: the mean of g^2 (weight 1/t, set per step), lr_decay 0
            self.m_gain[k], self.adagrad[k] = 1.0, 1.0
        self._has_l2 = bool((self.l2 != 0).any())
        self._has_decoupled = bool((self.decoupled != 0).any())
        self._has_nest = bool((self.nest != 0).any())

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
    def epoch_factors(self, lrs: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """Per-step ``(neg_rate, e)`` of the Adam update ``p += neg_rate * m / (sqrt(v) + e)``,
        each ``(S, K, 1)``, for the ``S`` steps of an epoch at rates ``lrs`` ``(S, K, 1)``,
        computed at once (a member that stays ``ok`` is at step ``steps + s + 1``; a masked one
        moves by an exact zero anyway). None for the other optimisers. Pass row ``s`` of each
        to :meth:`step` as ``factors``. A mixed population gets ``(neg_rate, e, w2)`` of its
        update (class doc) for every member.

        torch's Adam: ``p -= lr / bc1 * m / (sqrt(v) / bc2_sqrt + eps)``, the same update up to
        float rounding as ``neg_rate = -lr / bc1 * bc2_sqrt`` and ``e = eps * bc2_sqrt``, without
        an ``addcdiv`` whose ``(K, 1)`` operands broadcast over the ``(K, P)`` output (4x slower
        on this CPU than a plain add)."""
        if self.kind not in ("adam", "adamw", MIXED):
            return None
        S, dtype = lrs.shape[0], self.flat.dtype
        t = self.steps.unsqueeze(0) + torch.arange(
            1, S + 1, dtype=torch.float64, device=lrs.device
        ).unsqueeze(1)
        t = t.unsqueeze(-1)  # (S, K, 1)
        # Like torch, the bias corrections are computed in double, then used as floats.
        bc1 = 1 - self.bias_beta1.double().unsqueeze(0) ** t
        bc2_sqrt = (1 - self.bias_beta2.double().unsqueeze(0) ** t).sqrt()
        if self.kind != MIXED:
            step_size, bc2_sqrt = (lrs.double() / bc1).to(dtype), bc2_sqrt.to(dtype)
            return -(step_size * bc2_sqrt), self.eps.unsqueeze(0) * bc2_sqrt
        # Adam: rate lr / bc1 * bc2_sqrt and e eps * bc2_sqrt (1 for the others, see above);
        # Adagrad: sqrt(sum) = sqrt(t) * sqrt(mean)
        adagrad = self.adagrad.double().unsqueeze(0) > 0
        inv_sqrt_t = torch.where(adagrad, t.rsqrt(), 1.0)
        scale = bc2_sqrt * inv_sqrt_t
        rate = lrs.double() / bc1 * scale * self.rate_mult.double().unsqueeze(0)
        e = self.eps.double().unsqueeze(0) * scale
        w2 = torch.where(adagrad, 1.0 / t, self.v_gain.double().unsqueeze(0))
        return (-rate).to(dtype), e.to(dtype), w2.to(dtype)

    @torch.no_grad()
    def step(
        self,
        grad: torch.Tensor,
        lr: torch.Tensor,
        ok: torch.Tensor | None,
        factors: tuple[torch.Tensor, ...] | None = None,
    ) -> None:
        """One update of every member with ``ok`` (``(K, 1)`` bool; None: every member) at
        learning rates ``lr`` (``(K, 1)``); the other rows keep parameters and state bit for
        bit. ``factors``: this step's row of :meth:`epoch_factors` (computed here when None).

        In place and without ``torch.where`` on the ``(K, P)`` tensors: a masked member's
        gradient is zeroed and its rates are 0 (its decay factors 1), so each update adds an
        exact zero to its row; ``grad`` is used as scratch space. With ``ok`` None (the usual
        step, every member healthy and running) the per-member coefficients are used as they
        are, a dozen small ops fewer a step.
        """
        p, kind = self.flat, self.kind
        okf = None
        if ok is not None:
            okf = ok.to(p.dtype)
            # Clears a masked member's gradient, NaN/inf included, so 0 * grad stays 0.
            grad.masked_fill_(~ok, 0.0)
        if kind == MIXED:
            self._mixed_step(grad, lr, okf, factors)
            return
        if factors is None and kind in ("adam", "adamw"):
            factors = tuple(f[0] for f in self.epoch_factors(lr.unsqueeze(0)))  # type: ignore[union-attr]
        if kind == "adamw":
            if self._has_wd:
                p.mul_(1 - _masked(lr, okf) * self.weight_decay)
        elif self._has_wd:
            grad.addcmul_(p, _masked(self.weight_decay, okf))
        if kind == "sgd":
            # torch: buf = d_p on the first step, else momentum * buf + d_p (dampening 0); a zero
            # buffer gives exactly that, and momentum 0 gives buf = d_p (plain SGD).
            neg_lr = -_masked(lr, okf)
            buf = self.buf
            momentum = self.momentum if ok is None else torch.where(ok, self.momentum, 1.0)
            torch.addcmul(grad, buf, momentum, out=buf)
            if self.nesterov:
                grad.addcmul_(buf, self.momentum)
                p.addcmul_(grad, neg_lr)
            else:
                p.addcmul_(buf, neg_lr)
            return
        self.steps.add_(1.0 if okf is None else okf.view(-1))
        sq = self.sq
        if kind in ("adam", "adamw"):
            neg_rate, e = factors  # type: ignore[misc]
            # beta * state + (1 - beta) * x as one lerp each; weight 0 keeps a masked row exactly
            self.exp_avg.lerp_(grad, _masked(self.one_minus_beta1, okf))
            sq.lerp_(torch.mul(grad, grad, out=grad), _masked(self.one_minus_beta2, okf))
            denom = torch.sqrt(sq, out=grad).add_(e)
            p.addcmul_(torch.div(self.exp_avg, denom, out=grad), _masked(neg_rate, okf))
            return
        if kind == "rmsprop":
            sq.mul_(self.alpha if ok is None else torch.where(ok, self.alpha, 1.0))
            sq.addcmul_(grad, grad * self.one_minus_alpha)
        else:  # adagrad, lr_decay 0 and initial accumulator 0 as torch's defaults
            sq.addcmul_(grad, grad)
        denom = torch.sqrt(sq).add_(self.eps)
        p.addcmul_(grad.div_(denom), -_masked(lr, okf))

    def _mixed_step(
        self,
        grad: torch.Tensor,
        lr: torch.Tensor,
        okf: torch.Tensor | None,
        factors: tuple[torch.Tensor, ...] | None,
    ) -> None:
        """The mixed update (class doc) of every ``ok`` member; ``grad`` is already masked. A
        masked member's lerp weights and rate are 0, so its row and state stay as they are."""
        p, m, v, tmp = self.flat, self.exp_avg, self.sq, self.scratch
        assert m is not None and v is not None
        if self._has_decoupled:
            p.mul_(1 - _masked(lr, okf) * self.decoupled)
        if self._has_l2:
            grad.addcmul_(p, _masked(self.l2, okf))
        if factors is None:
            neg_rate, e, w2 = (f[0] for f in self.epoch_factors(lr.unsqueeze(0)))  # type: ignore[union-attr]
        else:
            neg_rate, e, w2 = factors
        self.steps.add_(1.0 if okf is None else okf.view(-1))
        m.lerp_(grad, _masked(self.m_gain, okf))
        v.lerp_(torch.mul(grad, grad, out=tmp), _masked(w2, okf))
        num = m
        if self._has_nest:  # g + mu / (1 - mu) * m on Nesterov rows, m on the others
            num = grad.mul_(self.nest).addcmul_(m, self.num_m)
        denom = torch.sqrt(v, out=tmp).add_(e)
        p.addcmul_(torch.div(num, denom, out=tmp), _masked(neg_rate, okf))


def _masked(column: torch.Tensor, okf: torch.Tensor | None) -> torch.Tensor:
    """A ``(K, 1)`` coefficient, zero for the masked members (``okf`` None: none masked)."""
    return column if okf is None else column * okf


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
