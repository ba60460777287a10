"""Distributed data parallel training: ``tunelab train CONFIG --nproc N`` on one machine, or
``tunelab train CONFIG`` under ``torchrun`` on one or several machines.

``torch.multiprocessing`` starts N processes that join a gloo process group over the
loopback interface. Each prepares the same data (same seed), builds the same model and runs
:func:`run_training`; the trainer sees the process group, wraps the model in
``DistributedDataParallel`` and gives each rank its own shard of every epoch's permutation
(``DistributedSampler``'s split). Rank 0 alone writes the training directory, runs the
callbacks and evaluates on the test split; the parent process reads ``result.json`` back.

Under ``torchrun --nnodes N --nproc-per-node M -m tunelab.cli train CONFIG`` the processes are
torchrun's: each finds its rank, the world size and the rendezvous in the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins with
``init_method="env://"`` -- gloo on CPU, nccl when the config trains on CUDA (each process on
GPU ``LOCAL_RANK``). Then it is the same run as ``--nproc``: rank 0 writes the run directory.
Every machine must see the same data path; only rank 0's machine gets the run directory.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import time
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
        _leave(dist)


def _leave(dist: Any) -> None:
    """Tear the process group down once nothing holds it any more.

    A DistributedDataParallel model that outlives ``destroy_process_group`` (kept by a
    reference cycle of the finished run until the interpreter exits) has its reducer's
    threads destroyed at exit against a group already gone: the rank aborts ("terminate
    called without an active exception"), 3 of 30 torchrun launches here and 2 of 30 in a
    bare DDP script with such a cycle, none of 40 once the cycles were collected first.
    """
    gc.collect()
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
    started = time.time()
    torch.multiprocessing.start_processes(
        _worker,
        args=(nproc, free_port(), cfg.to_dict(), str(run_dir), resume),
        nprocs=nproc,
        join=True,
        start_method=method,
    )
    return latest_result(run_dir, since=started)


def torchrun_world() -> int:
    """The world size torchrun (or any ``env://`` launcher) set for this process; 1 if none."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise FatalError(
            f"error: WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number"
        ) from None
    return world if "RANK" in os.environ and "MASTER_ADDR" in os.environ else 1


def run_under_torchrun(
    cfg: ExperimentConfig, *, run_dir: str | Path | None = None, resume: bool = False
) -> dict[str, Any] | None:
    """This process's share of a torchrun launch; rank 0 returns ``result.json``, others None."""
    import torch.distributed as dist

    from ._run import run_training

    started = time.time()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cuda = cfg.train.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or local_world) // local_world))
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    try:
        if rank != 0:
            cfg = cfg.with_values({"train.progress": "none"})
        run_training(cfg, run_dir=run_dir, resume=resume)
        # Leave together: a rank that tears gloo down while another still talks to it can
        # abort (and _leave frees the finished run's DDP model before the group goes).
        dist.barrier()
    finally:
        _leave(dist)
    if rank != 0:
        return None
    return latest_result(Path(run_dir) if run_dir is not None else cfg.run_dir, since=started)


def latest_result(run_dir: Path, *, since: float) -> dict[str, Any]:
    """``result.json`` of the run rank 0 just wrote.

    A run that ended usable replaced ``run_dir``; one that ended NaN, OOM or diverged was kept
    as ``run_dir/versions/<N>`` and left the previous run in place (train/_run.py), so the
    newest ``result.json`` written since ``since`` is this run's.
    """
    from ..rundir import RunDir

    run = RunDir(run_dir)
    candidates = [run.result, *(p / "result.json" for p in run.versions_dir.glob("*"))]
    fresh = [p for p in candidates if p.is_file() and p.stat().st_mtime >= since - 1]
    if not fresh:
        raise FatalError(f"error: the distributed run wrote no result.json under {run_dir}")
    newest = max(fresh, key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text(encoding="utf-8"))
