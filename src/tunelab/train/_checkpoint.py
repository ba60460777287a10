"""Atomic checkpoint files and the random-number state a resumed run needs.

Every file is written to a temporary name in the same directory, then moved over the old one
with ``os.replace`` (atomic on POSIX and Windows): a process killed during a save leaves the
previous checkpoint intact, never a half-written one. (No ``fsync``: it costs milliseconds per
save and guards against power loss, not against a killed process.) ``checkpoint.pt`` holds
only tensors and plain Python data so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from ..errors import FatalError

CHECKPOINT_FORMAT = 1


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then move ``tmp`` over ``path``; the temp file never survives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_TEMP_NAMES = itertools.count()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: one write to a temporary name, then a rename.

    The same guarantee as :func:`atomic_write` with fewer system calls (a trainer writes its
    final checkpoint and best weights this way at the end of every fit): the temporary name is
    unique per process and call (pid and a counter) rather than drawn by ``mkstemp``, and is
    removed only when the write or the rename fails.
    """
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_TEMP_NAMES)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` (plain data and tensors) atomically with ``torch.save``.

    ``torch.save`` into memory and one write: saving to a file path issues a write per record.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FatalError(f"error: cannot read checkpoint {path}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise FatalError(f"error: {path} is not a tunelab checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def save_weights(
    state_dict: dict[str, torch.Tensor], path: Path, *, snapshot: bool = False
) -> None:
    """Weights as safetensors, atomically (shared storage is cloned so safetensors accepts it).

    ``snapshot=True`` says the tensors are already separate contiguous CPU copies (what
    :func:`cpu_state` returns), so the defensive clone is skipped.
    """
    if snapshot:
        tensors = {k: v.contiguous() for k, v in state_dict.items()}  # no-op when contiguous
    else:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors))  # the bytes save_file writes, in one write


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module.state_dict()`` (a snapshot, not a view)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """The global torch RNG (dropout, init), the trainer's generator and CUDA's, as tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
