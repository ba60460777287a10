"""``tunelab train CONFIG`` under torchrun is the same run as ``tunelab train CONFIG --nproc 2``.

torchrun starts the two ranks and hands them the rendezvous through the environment; tunelab
joins with ``env://`` (gloo on this CPU). The rendezvous listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    cfg = {
        "name": name,
        "seed": 0,
        "run_root": str(tmp_path / "runs"),
        "data": {"source": "sklearn", "dataset": "digits", "scale": "standard"},
        "model": {"builder": "mlp", "params": {"depth": 1, "width": 32}},
        "train": {"epochs": 3, "batch_size": 32, "progress": "none", "tensorboard": False},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def test_torchrun_two_ranks_match_nproc_two(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists():
        pytest.skip("torchrun is not installed")
    cli = [sys.executable, "-m", "tunelab.cli", "train"]
    by_nproc = _run([*cli, str(_config(tmp_path, "by_nproc")), "--nproc", "2"])
    assert by_nproc.returncode == 0, by_nproc.stderr
    launch = [
        torchrun,
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "tunelab.cli",
        "train",
    ]
    by_torchrun = _run([*launch, str(_config(tmp_path, "by_torchrun"))])
    assert by_torchrun.returncode == 0, by_torchrun.stderr[-3000:]
    results = {
        name: json.loads((tmp_path / "runs" / name / "result.json").read_text())
        for name in ("by_nproc", "by_torchrun")
    }
    a, b = results["by_nproc"], results["by_torchrun"]
    assert a["status"] == b["status"] == "completed"
    assert a["epochs_run"] == b["epochs_run"] == 3
    for key, value in a["best_metrics"].items():
        if key.startswith("val_") and isinstance(value, float):
            assert b["best_metrics"][key] == pytest.approx(value, abs=1e-6), key
    rows = (tmp_path / "runs" / "by_torchrun" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3  # one writer: rank 0


def test_a_rank_frees_what_holds_the_group_before_tearing_it_down():
    """A DDP model kept alive by a reference cycle past ``destroy_process_group`` made a rank
    abort at exit ("terminate called without an active exception", 3 of 30 torchrun launches):
    the cycles are collected first."""
    import weakref

    from tunelab.train._distributed import _leave

    class Holder:
        pass

    def keep_in_a_cycle() -> weakref.ref:
        holder = Holder()
        holder.self = holder
        return weakref.ref(holder)

    held = keep_in_a_cycle()
    seen = []

    class FakeDist:
        def destroy_process_group(self) -> None:
            seen.append(held() is None)

    _leave(FakeDist())
    assert seen == [True]
