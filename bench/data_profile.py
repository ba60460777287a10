"""Benchmark: load and profile a 1M-row x 20-column CSV (goal: under 10 s).

Writes the CSV to a temporary directory (not timed), then times ``prepare_data`` — read, clean
(missing values filled, one categorical column one-hot encoded, duplicates counted), split,
fit scaling on train, transform every split, build the profile — and rendering the profile
table, which together are what ``tunelab data profile`` does.

    python bench/data_profile.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tunelab.config import DataConfig
from tunelab.data import prepare_data

GOAL_S = 10.0


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """18 float features (1% missing in three), one int, one 5-level categorical, a label."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(18):
        values = rng.normal(loc=i, scale=1 + i / 10, size=rows)
        mask = rng.random(rows) < 0.01 if i < 3 else None
        columns[f"x{i}"] = pa.array(values, mask=mask)
    columns["count"] = pa.array(rng.integers(0, 100, size=rows))
    columns["colour"] = pa.array(rng.choice(["red", "green", "blue", "grey", "pink"], size=rows))
    columns["label"] = pa.array(rng.integers(0, 3, size=rows))
    pacsv.write_csv(pa.table(columns), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        start = time.perf_counter()
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(
            f"wrote {args.rows} x 20 (+label) CSV, {size_mb:.0f} MB, in "
            f"{time.perf_counter() - start:.1f} s (not timed)"
        )
        cfg = DataConfig(source="csv", path=str(path), label="label")
        times, cpu = [], []
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            bundle = prepare_data(cfg, seed=0)
            text = bundle.profile.to_text()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        profile = bundle.profile
        print(
            f"rows per split: {profile.rows}; features: {profile.features}; "
            f"missing filled: {sum(profile.missing.values())}; profile text {len(text)} chars"
        )
        best, median = min(times), float(np.median(times))
        verdict = "PASS" if median < GOAL_S else "FAIL"
        print(
            f"load + profile: best {best:.2f} s, median {median:.2f} s wall over {args.repeat} "
            f"runs (goal < {GOAL_S:.0f} s): {verdict}"
        )
        # CPU seconds of this process (all threads): what the work costs when the machine is
        # shared and wall time mostly measures waiting for a core.
        print(
            f"CPU time per run: median {float(np.median(cpu)):.2f} s; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    main()
