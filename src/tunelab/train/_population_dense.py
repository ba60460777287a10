"""The training step of a dense population (an MLP), forward and backward written by hand.

A program of only Linear, elementwise activation and Dropout layers (the built-in MLP without
batch norm) needs no autograd: its backward is two batched matmuls and a sum per Linear and one
elementwise pass per activation and dropout layer. Measured on this CPU (2 cores, one torch
thread), autograd's engine, its ``AccumulateGrad`` adds into the ``.grad`` views and the
``grad.zero_()`` before every step cost about as much as the backward's matmuls for a K = 16
MLP of width 64; here every gradient is written straight into the population's ``(K, P)``
gradient, once, and the loss gradient (softmax minus smoothed targets) comes with the loss.

:class:`DropoutMasks` draws the dropout masks of every dropout layer for a block of steps in
one call per dropout member, from that member's own generator (its masks never depend on the
other members), as 16-bit integers compared with ``keep * 2**16 - 2**15``: the CPU generator
is the cost (on the Zen 5 CPU, one thread, ``random_`` over an int64 view's full range took 1.3
ns per 32 bits, ``random_`` on int32 1.8 ns), and four masks a 64-bit word halve it against
32-bit masks; the keep probability is resolved to 2**-16 (rounded to the nearest multiple;
``uniform_`` on float32 resolves 2**-24). In the K = 16 digits fit one epoch's refills took
1.3 ms against 1.9 ms for 32-bit masks (min of 60 epochs).

The head (the last Linear) is computed as ``W h^T``, ``(K, out, B)``: MKL's batched gemm took
2.5x as long for a head of 10 outputs as ``h W^T`` (``B x 10`` blocks), and was as fast either
way for the wider shapes tried (K = 16, batch 32-128, widths 32-256).

Programs with batch norm, convolutions or pooling take the autograd path
(``_population_forward.BatchedForward``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from ._population_forward import Step

_aten = torch.ops.aten

# An activation's backward reads what the forward saved: "sign" (its output, only whether it is
# positive: relu, leaky relu with a non-negative slope, so a dropout may scale that output in
# place), "output" (its output's value: tanh, sigmoid), "input" (gelu) or nothing (identity).
_SAVES = {nn.ReLU: "sign", nn.Tanh: "output", nn.Sigmoid: "output", nn.GELU: "input"}


def dense_supported(steps: Sequence[Step]) -> bool:
    """Whether ``steps`` (from ``compile_program``) can train with :class:`DenseStep`."""
    for step in steps:
        if step.kind in ("linear", "dropout", "flatten"):
            continue
        if step.kind != "act" or _saves(step.module) is None:
            return False
    return True


def _saves(module: nn.Module | None) -> str | None:
    if isinstance(module, nn.LeakyReLU):
        return "sign" if module.negative_slope >= 0 else "input"
    if isinstance(module, nn.Identity):
        return ""
    for kind, saves in _SAVES.items():
        if isinstance(module, kind):
            return saves
    return None


@dataclass
class _Layer:
    kind: str  # linear, act, dropout
    weight: torch.Tensor | None = None  # linear: (K, out, in) view of the parameters
    weight_t: torch.Tensor | None = None  # linear: its (K, in, out) transpose
    bias: torch.Tensor | None = None  # linear: (K, 1, out) view; the head's (K, out, 1)
    grad_weight: torch.Tensor | None = None  # linear: (K, out, in) view of the gradient
    grad_bias: torch.Tensor | None = None  # linear: (K, out) view
    first: bool = False  # linear: the input needs no gradient
    head: bool = False  # linear: the last one, computed transposed (see DenseStep.forward)
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None  # act, in place where it may
    saves: str = ""  # act: see _SAVES
    backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # act
    mask: int = -1  # dropout: index into the step's masks
    in_place: bool = True  # dropout: may scale its input in place


def _activation(module: nn.Module) -> tuple[Callable, Callable, Callable, str]:
    """``(forward, forward_, backward(grad, saved), saves)`` of an elementwise activation:
    ``forward_`` overwrites its input where the function allows it."""
    F = torch.nn.functional
    if isinstance(module, nn.ReLU):
        backward = lambda g, out: _aten.threshold_backward(g, out, 0.0)  # noqa: E731
        return torch.relu, torch.relu_, backward, "sign"
    if isinstance(module, nn.LeakyReLU):
        slope = float(module.negative_slope)
        forward = lambda z: F.leaky_relu(z, slope)  # noqa: E731
        if slope >= 0:
            return (
                forward,
                lambda z: F.leaky_relu(z, slope, inplace=True),
                lambda g, out: _aten.leaky_relu_backward(g, out, slope, True),
                "sign",
            )
        return forward, forward, lambda g, z: _aten.leaky_relu_backward(g, z, slope, False), "input"
    if isinstance(module, nn.Tanh):
        return torch.tanh, torch.tanh_, lambda g, out: _aten.tanh_backward(g, out), "output"
    if isinstance(module, nn.Sigmoid):
        backward = lambda g, out: _aten.sigmoid_backward(g, out)  # noqa: E731
        return torch.sigmoid, torch.sigmoid_, backward, "output"
    if isinstance(module, nn.GELU):
        approx = module.approximate
        forward = lambda z: F.gelu(z, approximate=approx)  # noqa: E731
        return forward, forward, lambda g, z: _aten.gelu_backward(g, z, approximate=approx), "input"
    identity = lambda z: z  # noqa: E731
    return identity, identity, lambda g, _: g, ""


class DenseStep:
    """Forward and backward of a dense program on ``(K, B, F)`` activations.

    Args:
        steps: a program that :func:`dense_supported` accepts.
        params: the population's ``(K, *shape)`` parameter views.
        grads: the matching views of the ``(K, P)`` gradient; :meth:`backward` writes every one.
        output_scale: the model's ``(offset, scale)`` output mapping, if it has one.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        params: dict[str, torch.Tensor],
        grads: dict[str, torch.Tensor],
        output_scale: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        if not dense_supported(steps):
            raise ValueError("the program has layers without a hand-written backward")
        self.layers: list[_Layer] = []
        self.mask_widths: list[int] = []  # features of each dropout layer, in order
        # the weight of the linear layer each dropout layer follows (its width is a packed
        # member's own width of that dropout layer: its weight's rows)
        self.mask_params: list[str] = []
        weight_name = ""
        self.output_scale = output_scale
        width = None
        # Whether the activation in flight is a fresh tensor nobody saved (a layer may then
        # overwrite it) and whether it is saved only for its signs (a dropout may scale it).
        owned = sign_only = False
        last = max(i for i, step in enumerate(steps) if step.kind == "linear")
        for i, step in enumerate(steps):
            if step.kind == "linear":
                w, b = step.params["weight"], step.params.get("bias")
                # detached views of the same storage: nothing is recorded for autograd
                weight = params[w].detach()
                layer = _Layer(
                    "linear",
                    weight=weight,
                    weight_t=weight.transpose(1, 2),
                    bias=None if b is None else params[b].detach().unsqueeze(2 if i == last else 1),
                    grad_weight=grads[w],
                    grad_bias=None if b is None else grads[b],
                    first=not any(lay.kind == "linear" for lay in self.layers),
                    head=i == last,
                )
                width, owned, sign_only = int(params[w].shape[1]), True, False
                weight_name = w
            elif step.kind == "act":
                assert step.module is not None
                forward, forward_, backward, saves = _activation(step.module)
                layer = _Layer(
                    "act", forward=forward_ if owned else forward, backward=backward, saves=saves
                )
                if saves:
                    owned, sign_only = saves == "input", saves == "sign"
            elif step.kind == "dropout":
                if width is None:
                    raise ValueError("dropout before the first linear layer")
                # in place on a fresh tensor, or on a relu output saved for its signs only: a
                # dropped unit's gradient is zero anyway and a kept unit keeps its sign
                layer = _Layer("dropout", mask=len(self.mask_widths), in_place=owned or sign_only)
                self.mask_widths.append(width)
                self.mask_params.append(weight_name)
                if not layer.in_place:
                    owned, sign_only = True, False
            else:  # flatten: the input arrives flat
                continue
            self.layers.append(layer)

    def forward(
        self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Outputs ``(K, B, out)`` for inputs ``(K, B, F)`` and what :meth:`backward` needs.
        ``masks``: one ``(K, B, F)`` scale per dropout layer (None: no dropout this step)."""
        h, tape = x, []
        for layer in self.layers:
            kind = layer.kind
            if kind == "linear":
                tape.append(h)
                if layer.head:
                    # (W h^T)^T (module doc); the (K, out, B) result is also the layout the
                    # loss's log_softmax wants
                    ht = h.transpose(1, 2)
                    w = layer.weight
                    h = torch.bmm(w, ht) if layer.bias is None else torch.baddbmm(layer.bias, w, ht)
                    h = h.transpose(1, 2)
                else:
                    wt = layer.weight_t
                    h = torch.bmm(h, wt) if layer.bias is None else torch.baddbmm(layer.bias, h, wt)
            elif kind == "act":
                if layer.saves == "input":
                    tape.append(h)
                    h = layer.forward(h)  # type: ignore[misc]
                else:
                    h = layer.forward(h)  # type: ignore[misc]
                    tape.append(h if layer.saves else None)
            else:
                mask = None if masks is None else masks[layer.mask]
                tape.append(mask)
                if mask is not None:
                    h = h.mul_(mask) if layer.in_place else h * mask
        if self.output_scale is not None:
            offset, scale = self.output_scale
            h = torch.addcmul(offset, h, scale)
        return h, tape

    def backward(self, grad: torch.Tensor, tape: list[torch.Tensor | None]) -> None:
        """Write every parameter's gradient for the output gradient ``grad`` ``(K, B, out)``
        (the gradient of the sum of the members' losses); ``grad`` may be overwritten."""
        g = grad
        if self.output_scale is not None:
            g = g.mul_(self.output_scale[1])
        for layer, saved in zip(reversed(self.layers), reversed(tape), strict=True):
            if layer.kind == "linear":
                assert saved is not None and layer.grad_weight is not None
                # the (K, P) gradient's views have a member stride of P: bmm computes into a
                # contiguous block, then one copy (faster here than bmm's strided out=)
                layer.grad_weight.copy_(torch.bmm(g.transpose(1, 2), saved))
                if layer.grad_bias is not None:
                    torch.sum(g, 1, out=layer.grad_bias)
                if not layer.first:
                    g = torch.bmm(g, layer.weight)  # type: ignore[arg-type]
            elif layer.kind == "act":
                g = layer.backward(g, saved)  # type: ignore[misc]
            elif saved is not None:
                g = g.mul_(saved)


class DropoutMasks:
    """Per-step dropout scales ``(K, B, F)`` of every dropout layer, drawn for the dropout
    members only (ones elsewhere), from each member's own generator.

    The masks live in one int32 buffer whose rows are reinterpreted as float32: a dropout
    member draws random int16 ``r`` (uniform over all 2**16 values: ``random_`` over the full
    range of an int64 scratch, four per word), then its row receives ``r < t`` as int32 and is
    multiplied in place by ``bits(1 / keep)`` (``t = keep * 2**16 - 2**15``; ``bits(x)`` is the
    int32 bit pattern of the float ``x``), so the float view holds ``0.0`` or ``1 / keep``; a
    row without dropout holds ones and is left alone. Two integer passes; a bool mask times a
    float scale (a type conversion) costs several times more.

    The buffer holds a block of whole steps (up to ``max_bytes``): :meth:`start_epoch` then
    :meth:`draw` per step, which refills the block (per dropout member one ``random_`` and the
    two passes on its rows) only when its steps are used up; drawn per step, eight dropout
    members cost 8 draws and 3 ops every step. A member's masks still depend only on its own
    generator and the epoch's batch sizes, never on the other members.

    Args:
        widths: the features of each dropout layer.
        size: K; batch: the largest batch; device: where the masks live.
        max_bytes: the most memory the block may take (at least one batch is held).
    """

    def __init__(
        self,
        widths: Sequence[int],
        size: int,
        batch: int,
        device: torch.device,
        max_bytes: int = 4 * 2**20,
    ) -> None:
        self.widths = list(widths)
        self.total = sum(self.widths)
        self.size, self.batch, self.device = int(size), int(batch), device
        per_step = self.size * self.batch * max(self.total, 1) * 4
        self.capacity = self.batch * max(1, int(max_bytes) // per_step)  # rows of the block
        self._bits = torch.empty(
            self.size, self.capacity, self.total, dtype=torch.int32, device=device
        )
        self._masks = self._bits.view(torch.float32)
        self._thresh = torch.empty(self.size, 1, 1, dtype=torch.int16, device=device)
        self._scale_bits = torch.empty(self.size, 1, 1, dtype=torch.int32, device=device)
        # Each member draws into this scratch (int64 words, four int16 each); a packed member
        # (narrower than the population, ``Population``'s packing) draws its own layers'
        # widths, then each layer's block is compared into its row: the same random stream its
        # own-shape population would draw.
        self._scratch = torch.empty(
            _quads(self.capacity * self.total), dtype=torch.int64, device=device
        )
        self._draws: list[tuple[int, torch.Generator, list[int] | None]] = []
        self._left = self._cursor = self._filled = 0
        # the slots whose rows hold ones (bits(1.0)), which a slot without dropout needs
        self._ones = [False] * self.size
        self.set_members([], [], [])

    def set_members(
        self,
        rows: Sequence[int],
        generators: Sequence[torch.Generator],
        keep: Sequence[float],
        hi: int | None = None,
        own_widths: Sequence[list[int] | None] | None = None,
    ) -> None:
        """The members that draw masks: slots ``rows``, their generators and keep rates;
        :meth:`draw` returns the first ``hi`` slots' masks (None: all K), the prefix the
        population trains. ``own_widths``: per row, a packed member's own width of each
        dropout layer (None: the population's widths); its units beyond them get masks of
        no consequence (their activations are exact zeros). Call between epochs."""
        self.hi = self.size if hi is None else int(hi)
        keep_all = [1.0] * self.size
        for k, p in zip(rows, keep, strict=True):
            keep_all[k] = float(p)
        keep_t = torch.tensor(keep_all, dtype=torch.float64, device=self.device).view(-1, 1, 1)
        # P(r < t) = (t + 2**15) / 2**16 for r uniform on [-2**15, 2**15)
        self._thresh.copy_((keep_t * 2**16 - 2**15).round().clamp(max=2**15 - 1))
        self._scale_bits.copy_((1.0 / keep_t).to(torch.float32).view(torch.int32))
        drawing = set(rows)
        for k in range(self.size):
            if k in drawing:
                self._ones[k] = False
            elif k < self.hi and not self._ones[k]:  # a slot whose member stopped dropping
                self._masks[k].fill_(1.0)
                self._ones[k] = True
        owns = list(own_widths) if own_widths is not None else [None] * len(rows)
        self._draws = [
            (k, gen, None if own == self.widths else own)
            for k, gen, own in zip(rows, generators, owns, strict=True)
        ]
        self._cursor = self._filled = 0
        self._views: dict[tuple[int, int], list[torch.Tensor]] = {}

    @property
    def active(self) -> bool:
        return bool(self._draws)

    def start_epoch(self, rows: int) -> None:
        """An epoch of ``rows`` training rows begins (its steps' batches, in order)."""
        self._left, self._cursor, self._filled = int(rows), 0, 0

    def _fill(self, rows: int) -> None:
        """Draw the next ``rows`` rows of every dropout member's masks into the block."""
        for k, gen, own in self._draws:
            row = self._bits[k, :rows]
            widths = self.widths if own is None else own
            shorts = rows * sum(widths)
            self._scratch[: _quads(shorts)].random_(-(2**63), None, generator=gen)
            scratch = self._scratch.view(torch.int16)[:shorts].view(rows, sum(widths))
            if own is None:
                torch.lt(scratch, self._thresh[k], out=row)
            else:
                start = mine = 0
                for width, own_width in zip(self.widths, own, strict=True):
                    mask = row[:, start : start + own_width]
                    torch.lt(scratch[:, mine : mine + own_width], self._thresh[k], out=mask)
                    start, mine = start + width, mine + own_width
            # on the dropout members' rows only (the others hold ones)
            row.mul_(self._scale_bits[k])
        self._left -= rows
        self._cursor, self._filled = 0, rows

    def draw(self, batch: int) -> list[torch.Tensor]:
        """This step's scales, one ``(hi, batch, F)`` view per dropout layer."""
        if self._cursor + batch > self._filled:
            # whole steps: the capacity is a multiple of the full batch, and only an epoch's
            # last batch is shorter
            self._fill(min(self.capacity, max(self._left, batch)))
        start = self._cursor
        self._cursor += batch
        # the same positions of the block come back every block: their views are made once
        # (until set_members changes hi)
        views = self._views.get((start, batch))
        if views is None:
            masks = self._masks[: self.hi, start : start + batch]
            views, col = [], 0
            for width in self.widths:
                views.append(masks[:, :, col : col + width])
                col += width
            self._views[(start, batch)] = views
        return views


def _quads(shorts: int) -> int:
    """The int64 words that hold ``shorts`` int16 values."""
    return (shorts + 3) // 4
