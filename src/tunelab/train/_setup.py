"""Where and how a fit runs: device, precision, autocast, DDP, batches, out-of-memory detection."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..config._space import SearchSpace
from ..errors import ConfigError


def check_resolved(cfg: TrainConfig) -> None:
    """A search space left in the ``train`` section is a config error (tune resolves them)."""
    for name in type(cfg).model_fields:
        if isinstance(getattr(cfg, name), SearchSpace):
            raise ConfigError(
                f"config error: train.{name} is a search space; give it a value "
                "(cfg.with_values(...)) or run `tunelab tune`",
                field=f"train.{name}",
            )


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without it is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "config error: train.device — 'cuda' but no CUDA device is available; "
            "use 'auto' or 'cpu'",
            field="train.device",
        )
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``device``; fp16 needs CUDA (and its GradScaler)."""
    if name == "auto":
        if device.type != "cuda":
            return "fp32"  # bf16 on CPUs without AMX is usually slower than fp32
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(
            "config error: train.precision — 'fp16' needs a CUDA device; use 'bf16' on the CPU",
            field="train.precision",
        )
    return name


def autocast_context(precision: str, device: torch.device) -> Callable[[], Any]:
    """A factory of the autocast context for ``precision`` (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


def distributed_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError`` and the CPU allocator's "out of memory" RuntimeErrors."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def wrap_model(
    model: nn.Module, *, distributed: bool, compile: bool
) -> tuple[nn.Module, nn.Module, Any]:
    """``(train_forward, eval_forward, ddp)``: DDP for training in a process group, compiled
    when asked; evaluation runs the plain (or compiled) module without DDP's collectives."""
    ddp = None
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model)
    train_forward: nn.Module = ddp if ddp is not None else model
    eval_forward: nn.Module = model
    if compile:
        train_forward = torch.compile(train_forward)
        eval_forward = train_forward if ddp is None else torch.compile(model)
    return train_forward, eval_forward, ddp


def batch_sizes(rows: int, batch_size: int) -> list[int]:
    """Rows in each batch of an epoch over ``rows`` rows (the last one may be short)."""
    return [min(batch_size, rows - start) for start in range(0, rows, batch_size)]


def batch_scales(rows: int, batch_size: int, accumulate: int) -> Sequence[float]:
    """Per micro-batch, its rows over the rows of its accumulation group.

    Scaling each micro-batch's mean loss this way makes the accumulated gradient equal the
    gradient of one batch of the whole group, even when the last group is short.
    """
    sizes = batch_sizes(rows, batch_size)
    if accumulate == 1:
        return [1.0] * len(sizes)
    scales = []
    for g in range(0, len(sizes), accumulate):
        group = sizes[g : g + accumulate]
        scales += [s / sum(group) for s in group]
    return scales


def to_device(tensor: torch.Tensor, *, device: torch.device, pin: bool = False) -> torch.Tensor:
    """``tensor`` on ``device``; with ``pin`` a CPU tensor goes through pinned memory (faster
    one-time copy to a GPU). The data moves once per fit, never per batch."""
    if pin and device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
