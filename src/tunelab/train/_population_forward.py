"""The batched forward of K members of one architecture, written with batched kernels.

A built-in MLP or CNN is a ``body`` Sequential plus a ``head`` Linear. Its layers are compiled
once into a list of steps that run all K members together:

- dense activations are ``(K, B, F)`` and a Linear is one ``torch.baddbmm`` over the stacked
  ``(K, out, in)`` weights;
- image activations are packed along channels, ``(B, K * C, H, W)``, so a Conv2d is one grouped
  convolution (``groups = K``), a BatchNorm2d is one ``batch_norm`` over ``K * C`` channels with
  per-member running statistics (stacked ``(K, C)`` buffers), and pooling is channel-wise;
- Dropout reads a per-member keep probability (``(K, 1, 1)``): members differ in dropout rate.

Measured against ``torch.func.vmap(functional_call)`` for the MLP on this CPU (see
``bench/population.py --forward``), the hand-written batched forward is faster and needs no
special handling of dropout RNG or BatchNorm buffers under ``vmap``. ``supports`` lists what
compiles; anything else (LSTM, transformer, ResNet's residual blocks) trains sequentially.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Identity)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


@dataclass
class Step:
    """One layer of the batched program: ``kind`` and what it needs."""

    kind: str  # flatten, linear, bn, act, dropout, conv, pool
    module: nn.Module | None = None
    params: dict[str, str] = field(default_factory=dict)  # role -> parameter name
    buffers: dict[str, str] = field(default_factory=dict)  # role -> buffer name
    inplace: bool = False  # a ReLU that may overwrite its input (see compile_program)


def supports_module(model: nn.Module) -> tuple[bool, str]:
    """Whether :func:`compile_program` can run ``model`` as a population, and why not."""
    body, head = getattr(model, "body", None), getattr(model, "head", None)
    name = type(model).__name__
    if not isinstance(body, nn.Sequential) or not isinstance(head, nn.Linear):
        return False, f"{name} is not a body Sequential + Linear head (only mlp and cnn are)"
    image = False
    for i, layer in enumerate(body):
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                return False, f"{name}: conv layer {i} uses padding {layer.padding!r}"
            image = True
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not layer.track_running_stats or not layer.affine:
                return False, f"{name}: batch norm layer {i} without running stats or affine"
        elif isinstance(layer, nn.Dropout):
            if image:
                return False, f"{name}: dropout on feature maps (layer {i})"
        elif isinstance(layer, nn.Flatten):
            image = False
        elif isinstance(layer, nn.Linear):
            if image:
                return False, f"{name}: linear layer {i} on feature maps"
        elif not isinstance(layer, _ELEMENTWISE + _POOLS):
            return False, f"{name}: layer {i} ({type(layer).__name__}) has no batched form"
    if image:
        return False, f"{name}: the body must end flat (Flatten) before the head"
    return True, ""


def compile_program(model: nn.Module) -> list[Step]:
    """The steps of ``model`` (checked with :func:`supports_module` first)."""
    ok, why = supports_module(model)
    if not ok:
        raise ValueError(why)
    steps: list[Step] = []
    for i, layer in enumerate(model.body):
        prefix = f"body.{i}."
        if isinstance(layer, nn.Flatten):
            steps.append(Step("flatten"))
        elif isinstance(layer, nn.Linear):
            steps.append(_linear(layer, prefix))
        elif isinstance(layer, nn.Conv2d):
            roles = {"weight": prefix + "weight"}
            if layer.bias is not None:
                roles["bias"] = prefix + "bias"
            steps.append(Step("conv", layer, roles))
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            params = {"weight": prefix + "weight", "bias": prefix + "bias"}
            buffers = {
                r: prefix + r for r in ("running_mean", "running_var", "num_batches_tracked")
            }
            steps.append(Step("bn", layer, params, buffers))
        elif isinstance(layer, nn.Dropout):
            steps.append(Step("dropout"))
        elif isinstance(layer, _POOLS):
            steps.append(Step("pool", layer))
        else:
            steps.append(Step("act", layer))
    steps.append(_linear(model.head, "head."))
    # ReLU then max pooling runs as max pooling then ReLU: the same values and gradients (a
    # max of ReLUs is the ReLU of the max, at the same first argmax; a window whose max is <= 0
    # passes no gradient either way), with the activation and its backward on maps a quarter
    # the size (digits CNN, K = 16: the (64, 128, 8, 8) ReLU backward was the step's third
    # largest op in the profile).
    for i in range(len(steps) - 1):
        act, pool = steps[i], steps[i + 1]
        if (
            act.kind == "act"
            and type(act.module) is nn.ReLU
            and pool.kind == "pool"
            and type(pool.module) is nn.MaxPool2d
        ):
            steps[i], steps[i + 1] = pool, act
    # A ReLU right after a conv, batch norm, linear or max pooling runs in place: none of their
    # backwards reads their output, and the packed (B, K * C, H, W) maps are past this core's
    # L2, where a new tensor per activation costs a fresh write.
    for i in range(1, len(steps)):
        step, prev = steps[i], steps[i - 1]
        if step.kind == "act" and type(step.module) is nn.ReLU:
            step.inplace = prev.kind in ("conv", "bn", "linear") or (
                prev.kind == "pool" and type(prev.module) is nn.MaxPool2d
            )
    return steps


def _linear(layer: nn.Linear, prefix: str) -> Step:
    roles = {"weight": prefix + "weight"}
    if layer.bias is not None:
        roles["bias"] = prefix + "bias"
    return Step("linear", layer, roles)


class BatchedForward:
    """Runs a compiled program on stacked parameters.

    Args:
        steps: from :func:`compile_program`.
        in_shape: one sample's shape (``(F,)`` or ``(C, H, W)``/``(H, W)`` for images).
        output_scale: the model's ``(offset, scale)`` output mapping, if it has one.
    """

    def __init__(
        self,
        steps: list[Step],
        in_shape: tuple[int, ...],
        output_scale: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.steps = steps
        self.image = any(s.kind == "conv" for s in steps)
        self.in_shape = tuple(in_shape)
        self.output_scale = output_scale
        # Dropout masks of a subset of members: one (K, B, F) buffer per layer and shape, ones in
        # the rows without dropout, reused step after step (only the dropout rows are redrawn).
        self._masks: dict[tuple[int, tuple[int, ...]], Any] = {}

    def __call__(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        *,
        training: bool,
        keep: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        shared_input: bool = False,
        drop_rows: torch.Tensor | None = None,
        drop_generators: list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Outputs ``(K, B, out)``.

        ``x`` is ``(K, B, *in_shape)`` (per-member batches) or, with ``shared_input``,
        ``(B, *in_shape)`` seen by every member (validation). ``keep`` is the per-member keep
        probability ``(K, 1)`` for dropout in training (None: no dropout); ``drop_rows`` (the
        indices of the members with ``keep < 1``, None: all) limits the random draws to them, each
        row drawn from its own generator in ``drop_generators`` (one per row of ``drop_rows``), so
        a member's masks never depend on the other members.
        """
        K = next(iter(params.values())).shape[0]
        if self.image:
            h = self._pack_images(x, K, shared_input)
        else:
            B = x.shape[0] if shared_input else x.shape[1]
            h = x.reshape(1, B, -1).expand(K, B, -1) if shared_input else x.reshape(K, B, -1)
        packed = self.image
        for i, step in enumerate(self.steps):
            kind = step.kind
            if kind == "linear":
                w = params[step.params["weight"]]
                bias = step.params.get("bias")
                if bias is None:
                    h = torch.bmm(h, w.transpose(1, 2))
                else:
                    h = torch.baddbmm(params[bias].unsqueeze(1), h, w.transpose(1, 2))
            elif kind == "act":
                h = torch.relu_(h) if step.inplace else step.module(h)
            elif kind == "dropout":
                if training and keep is not None:
                    h = h * self._dropout_mask(i, h, keep, drop_rows, generator, drop_generators)
            elif kind == "flatten":
                if packed:
                    # (B, K * C, H, W) channels_last -> (K, B, C * H * W) in (C, H, W) order,
                    # through the (B, H, W, K, C) view: then the one copy is this reshape's, and
                    # its backward hands the pooling a channels_last gradient (a plain reshape
                    # handed it an NCHW one, which the pooling's backward converted inside)
                    B, KC, H, W = h.shape
                    h = h.permute(0, 2, 3, 1).reshape(B, H, W, K, KC // K)
                    h = h.permute(3, 0, 4, 1, 2).reshape(K, B, -1)
                    packed = False
                else:
                    h = h.reshape(K, h.shape[1], -1)
            elif kind == "conv":
                h = self._conv(step, params, h, K)
            elif kind == "bn":
                h = self._batch_norm(step, params, buffers, h, K, packed, training)
            elif kind == "pool":  # channel-wise, so packing members along channels changes nothing
                pool: Any = step.module
                # an adaptive pool to the size it is given is the identity (digits: 2x2 maps
                # to at most 4x4 cells); its backward cost 0.6 ms a step in the profile
                if not isinstance(pool, nn.AdaptiveAvgPool2d) or _adaptive_size(pool, h) != tuple(
                    h.shape[-2:]
                ):
                    h = pool(h)
        if self.output_scale is not None:
            offset, scale = self.output_scale
            h = h * scale + offset
        return h

    def _dropout_mask(
        self,
        i: int,
        h: torch.Tensor,
        keep: torch.Tensor,
        rows: torch.Tensor | None,
        generator: torch.Generator | None,
        generators: list[torch.Generator] | None,
    ) -> torch.Tensor:
        """``1 / keep`` where kept, else 0; rows outside ``rows`` are all ones."""
        K, tail = h.shape[0], [1] * (h.ndim - 1)
        if rows is None:
            kp = keep.reshape(K, *tail)
            mask = torch.rand(h.shape, generator=generator, device=h.device)
            return mask.lt_(kp).div_(kp)
        key = (i, tuple(h.shape))
        cached = self._masks.get(key)
        if cached is None or cached[0] is not rows:
            kp_rows = keep.index_select(0, rows).reshape(rows.numel(), *tail)
            ones = torch.ones(h.shape, device=h.device, dtype=h.dtype)
            draw = torch.empty((rows.numel(), *h.shape[1:]), device=h.device, dtype=h.dtype)
            cached = (rows, ones, kp_rows, draw)
            self._masks[key] = cached
        _, buf, kp, draw = cached
        if rows.numel() == 0:
            return buf
        for j, gen in enumerate(generators or [generator] * rows.numel()):
            draw[j].uniform_(generator=gen)
        buf.index_copy_(0, rows, draw.lt_(kp).div_(kp))
        return buf

    def _pack_images(self, x: torch.Tensor, K: int, shared: bool) -> torch.Tensor:
        # channels_last: on CPU the grouped convolution, batch norm and max pooling of the
        # packed (B, K * C, H, W) maps run several times faster in that memory format.
        cl = torch.channels_last
        c = self.in_shape[0] if len(self.in_shape) == 3 else 1
        if shared:
            x = x.reshape(x.shape[0], c, *x.shape[-2:])
            return (x.repeat(1, K, 1, 1) if K > 1 else x).contiguous(memory_format=cl)
        x = x.reshape(K, x.shape[1], c, *x.shape[-2:])
        x = x.transpose(0, 1).reshape(x.shape[1], K * c, *x.shape[-2:])
        return x.contiguous(memory_format=cl)

    @staticmethod
    def _conv(step: Step, params: dict[str, torch.Tensor], h: torch.Tensor, K: int) -> torch.Tensor:
        conv: Any = step.module
        w = params[step.params["weight"]]
        bias = params[step.params["bias"]].reshape(-1) if "bias" in step.params else None
        return F.conv2d(
            h,
            w.reshape(K * w.shape[1], *w.shape[2:]),
            bias,
            conv.stride,
            conv.padding,
            conv.dilation,
            K * conv.groups,
        )

    @staticmethod
    def _batch_norm(
        step: Step,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        h: torch.Tensor,
        K: int,
        packed: bool,
        training: bool,
    ) -> torch.Tensor:
        bn: Any = step.module
        names = step.buffers
        mean = buffers[names["running_mean"]].view(-1)  # (K, C) -> K*C channels, same storage
        var = buffers[names["running_var"]].view(-1)
        momentum = bn.momentum
        if training:
            tracked = buffers[names["num_batches_tracked"]]
            tracked.add_(1)
            if momentum is None:  # cumulative moving average, as nn.BatchNorm
                momentum = 1.0 / float(tracked[0])
        weight = params[step.params["weight"]].reshape(-1)
        bias = params[step.params["bias"]].reshape(-1)
        if packed:
            return F.batch_norm(h, mean, var, weight, bias, training, momentum, bn.eps)
        B = h.shape[1]
        flat = h.transpose(0, 1).reshape(B, -1)  # (B, K * F)
        out = F.batch_norm(flat, mean, var, weight, bias, training, momentum, bn.eps)
        return out.reshape(B, K, -1).transpose(0, 1)


def _adaptive_size(pool: nn.AdaptiveAvgPool2d, h: torch.Tensor) -> tuple[int, int]:
    """The output size of ``pool`` on ``h`` (None in its size keeps that side)."""
    size = pool.output_size
    hw = (size, size) if isinstance(size, int) else tuple(size)
    return tuple(s if s is not None else d for s, d in zip(hw, h.shape[-2:], strict=True))  # type: ignore[return-value]


def vmap_forward(model: nn.Module) -> Callable[..., torch.Tensor]:
    """``torch.func`` reference: ``f(params, buffers, x)`` for ``(K, B, ...)`` inputs, used by the
    benchmark to compare the two ways of batching (eval-mode semantics for BatchNorm)."""
    from torch.func import functional_call, vmap

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
        return functional_call(model, (p, b), (x,))

    return vmap(one, randomness="different")
