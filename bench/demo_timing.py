"""How long ``tunelab demo`` takes end to end, and where the time goes.

Runs the real command in a fresh process (imports and worker start-up included, as a user sees
it), ``--repeats`` times, and prints the wall time plus each step's share from the run's
``run_info.json``, with the load average before and after so a figure taken on a busy machine
is marked as such.

    python bench/demo_timing.py                       # the full demo on digits (goal: <= 180 s)
    python bench/demo_timing.py --quick               # the test-size demo (goal: <= 60 s)
    python bench/demo_timing.py --dataset breast_cancer
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(args: argparse.Namespace, root: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "tunelab.cli", "demo", "--dataset", args.dataset]
    command += ["--run-root", str(root)] + (["--quick"] if args.quick else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"demo failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    info = json.loads((root / f"demo-{args.dataset}" / "run_info.json").read_text())
    # CPU seconds of the demo and every worker process it waited for: the load-independent cost.
    info["cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default="digits", choices=["digits", "breast_cancer"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    goal = 60.0 if args.quick else 180.0
    walls, infos = [], []
    load_before = os.getloadavg()
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
            wall, info = run_once(args, Path(tmp))
        walls.append(wall)
        infos.append(info)
        print(
            f"run {i + 1}: {wall:.1f} s wall (inside the demo: {info['wall_time_s']:.1f} s), "
            f"{info['cpu_s']:.1f} s CPU over all processes"
        )
    load_after = os.getloadavg()
    median = statistics.median(walls)
    print()
    label = f"tunelab demo --dataset {args.dataset}{' --quick' if args.quick else ''}"
    cpu = statistics.median(info["cpu_s"] for info in infos)
    print(f"{label}: median {median:.1f} s over {len(walls)} run(s); goal <= {goal:.0f} s")
    per_core = cpu / (os.cpu_count() or 1)
    print(f"CPU time, all processes: median {cpu:.1f} s ({per_core:.1f} s per core)")
    load = f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    print(f"cores {os.cpu_count()}; {load}")
    print("\n| step | seconds (median) |\n|---|---:|")
    names = [s["name"] for s in infos[0]["steps"]]
    for name in names:
        values = [s["seconds"] for info in infos for s in info["steps"] if s["name"] == name]
        print(f"| {name} | {statistics.median(values):.1f} |")
    startup = median - statistics.median(info["wall_time_s"] for info in infos)
    print(f"| start-up and imports | {startup:.1f} |")
    print(f"| **total (wall, fresh process)** | **{median:.1f}** |")


if __name__ == "__main__":
    main()
