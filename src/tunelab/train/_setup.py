"""Where and how a fit runs: device, precision, autocast, DDP rank, out-of-memory detection."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ConfigError


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
