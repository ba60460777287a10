"""Trials per hour of ``tunelab tune`` with 1 and with 2 worker processes.

The same study (grid search, no pruning, a fixed number of epochs per trial on a synthetic
classification set with an MLP) runs through the real command, ``tunelab tune CONFIG --workers
W``, in three variants taken in turn (so that load from other users of the machine hits all
alike):

- 1 worker with torch's default threads (= cores, what ``cores // N`` gives for N = 1);
- 1 worker with ``train.threads: 1``, the fair baseline for
- 2 workers, each with ``torch.set_num_threads(cores // 2)`` (= 1 here).

Two throughputs per run:

- end to end: trials / wall time of the whole command (process start-up and data preparation
  included, which a second worker pays again);
- trial phase: trials / (last trial finished - first trial started), read from the study.

Like for like: the grid sampler runs every grid point exactly once whatever the number of
workers, so 1 and 2 workers train the identical list of trial configurations (the script checks
that the sets of parameters match). The verdict is the end-to-end ratio, what a user sees.

The load average before and after each run is printed too: on a shared machine it says how
many cores the two workers could actually get. So is the CPU time of the command and all its
processes per trial -- the load-independent cost: if two workers spend no more CPU per trial
than one, two free cores give them twice the throughput.

    python bench/parallel.py [--epochs 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

# 4 widths x 6 learning rates: a 24-point grid, run whole (a part of a grid would be a random
# subset that could differ between runs).
LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
GRID_POINTS = 4 * len(LRS)
VARIANTS = (("1 worker", 1, None), ("1 worker, 1 thread", 1, 1), ("2 workers", 2, None))


def config(run_root: Path, name: str, trials: int, epochs: int, threads: int | None) -> dict:
    return {
        "name": name,
        "seed": 0,
        "run_root": str(run_root),
        "data": {
            "source": "synthetic",
            "synthetic": {"n_samples": 3000, "n_features": 32, "n_informative": 12, "n_classes": 4},
        },
        "model": {
            "builder": "mlp",
            "params": {"depth": 2, "width": {"choice": [64, 128, 256, 512]}},
        },
        "train": {
            "epochs": epochs,
            "batch_size": 32,
            "lr": {"choice": LRS},
            "tensorboard": False,
            "deterministic": False,
            "early_stopping": {"enabled": False},
            "threads": threads,
        },
        "tune": {"trials": trials, "sampler": "grid", "pruner": "none", "progress": "plain"},
    }


def tunelab_command() -> list[str]:
    script = shutil.which("tunelab") or str(Path(sys.executable).parent / "tunelab")
    return [script] if Path(script).exists() else [sys.executable, "-m", "tunelab.cli"]


def run(variant: tuple, root: Path, index: int, trials: int, epochs: int) -> dict:
    label, workers, threads = variant
    name = f"par-{workers}w-{threads or 'default'}t-{index}"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config(root / "runs", name, trials, epochs, threads)))
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [*tunelab_command(), "tune", str(path), "--workers", str(workers)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    study = optuna.load_study(
        study_name=name, storage=f"sqlite:///{root / 'runs' / name / 'study.db'}"
    )
    finished = [t for t in study.trials if t.datetime_complete is not None]
    first = min(t.datetime_start for t in finished)
    last = max(t.datetime_complete for t in finished)
    phase = (last - first).total_seconds()
    # How long after the first trial each other worker process started its own first trial.
    starts: dict[int, float] = {}
    for t in finished:
        pid = t.user_attrs.get("worker", {}).get("pid", 0)
        offset = (t.datetime_start - first).total_seconds()
        starts[pid] = min(starts.get(pid, offset), offset)
    lag = max(starts.values()) if len(starts) > 1 else 0.0
    return {
        "variant": label,
        "params": sorted(json.dumps(t.params, sort_keys=True) for t in finished),
        "workers": workers,
        "trials": len(finished),
        "wall_s": round(wall, 1),
        "trial_phase_s": round(phase, 1),
        "helper_start_lag_s": round(lag, 1),
        "per_hour_wall": round(len(finished) / wall * 3600),
        "per_hour_phase": round(len(finished) / phase * 3600),
        # CPU seconds of the command and all its worker processes: the load-independent cost.
        "cpu_s": round(cpu, 1),
        "cpu_per_trial_s": round(cpu / len(finished), 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.repeats):
            for variant in VARIANTS:
                row = run(variant, Path(tmp), index, GRID_POINTS, args.epochs)
                rows.append(row)
                print(json.dumps(row), flush=True)
    grids = {tuple(r["params"]) for r in rows}
    if len(grids) != 1:
        raise SystemExit("the variants trained different trial lists: not like for like")
    for r in rows:
        r.pop("params")
    print(
        f"\n{GRID_POINTS} trials x {args.epochs} epochs, {os.cpu_count()} CPU cores, "
        f"median of {args.repeats}"
    )
    medians = {}
    for label, _, _ in VARIANTS:
        mine = [r for r in rows if r["variant"] == label]
        medians[label] = {
            k: statistics.median(r[k] for r in mine)
            for k in ("per_hour_wall", "per_hour_phase", "cpu_per_trial_s")
        }
        print(
            f"{label:<20} {medians[label]['per_hour_wall']:>6.0f} trials/h end to end, "
            f"{medians[label]['per_hour_phase']:>6.0f} trials/h in the trial phase, "
            f"{medians[label]['cpu_per_trial_s']:.2f} CPU s per trial"
        )
    for base in ("1 worker", "1 worker, 1 thread"):
        for key, what in (("per_hour_wall", "end to end"), ("per_hour_phase", "trial phase")):
            ratio = medians["2 workers"][key] / medians[base][key]
            print(f"2 workers vs {base} ({what}): {ratio:.2f}x (goal >= 1.8x)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
