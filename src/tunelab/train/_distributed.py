"""Distributed data parallel training on one machine (``tunelab train CONFIG --nproc N``).

``torch.multiprocessing`` starts N processes that join a gloo process group over the
loopback interface. Each prepares the same data (same seed), builds the same model and runs
:func:`run_training`; the trainer sees the process group, wraps the model in
``DistributedDataParallel`` and gives each rank its own shard of every epoch's permutation
(``DistributedSampler``'s split). Rank 0 alone writes the training directory, runs the
callbacks and evaluates on the test split; the parent process reads ``result.json`` back.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import torch

from ..config import ExperimentConfig, parse_config
from ..errors import ConfigError, FatalError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(
    rank: int, world: int, port: int, config: dict[str, Any], run_dir: str, resume: bool
) -> None:
    import torch.distributed as dist

    from ._run import run_training

    # Each rank computes on its own core; more threads per rank would only fight for them.
    torch.set_num_threads(max(1, (os.cpu_count() or world) // world))
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        cfg = parse_config(config)
        if rank != 0:  # one progress display is enough
            cfg = cfg.with_values({"train.progress": "none"})
        run_training(cfg, run_dir=run_dir, resume=resume)
    finally:
        dist.destroy_process_group()


def run_distributed(
    cfg: ExperimentConfig, nproc: int, *, run_dir: str | Path | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train with ``nproc`` CPU processes (gloo); returns rank 0's ``result.json`` content."""
    if nproc < 2:
        raise ConfigError(f"config error: --nproc must be at least 2 for DDP, got {nproc}")
    if not torch.distributed.is_available():
        raise FatalError("error: this torch build has no torch.distributed")
    if cfg.model.unfreeze_after is not None and cfg.model.freeze_backbone:
        raise ConfigError(
            "config error: model.unfreeze_after — unfreezing during a distributed run is not "
            "supported; drop --nproc or model.unfreeze_after",
            field="model.unfreeze_after",
        )
    if cfg.search_spaces():
        raise ConfigError(
            "config error: `tunelab train` needs plain values; this config has search spaces "
            f"({', '.join(cfg.search_spaces())}); run `tunelab tune` instead"
        )
    run_dir = Path(run_dir) if run_dir is not None else cfg.run_dir
    # Fail on bad data in this process, with one line, rather than in N tracebacks.
    from ..data import prepare_data

    prepare_data(cfg.data, seed=cfg.seed)
    # fork (Linux) starts the workers without re-importing torch and tunelab in each of them;
    # elsewhere spawn is the only safe method.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    torch.multiprocessing.start_processes(
        _worker,
        args=(nproc, free_port(), cfg.to_dict(), str(run_dir), resume),
        nprocs=nproc,
        join=True,
        start_method=method,
    )
    return json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
