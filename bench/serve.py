"""Serving benchmark: requests/s and latency percentiles of ``tunelab serve`` over real HTTP.

Trains two small runs with tunelab (digits as 64 named pixel features with an MLP, and digits
as 1x8x8 images with a CNN), exports ONNX and int8, then for each served model starts
``tunelab serve`` in its own process on 127.0.0.1 (one inference thread, access log off) and
sends ``--requests`` POST /predict requests from ``--concurrency`` client threads (keep-alive
connections), first with 1 row per request, then with 64 rows. Latency is the client's wall
time per request (JSON encoding excluded, decoding included); warm-up requests are not counted.

    python bench/serve.py                       # 600 requests per case, 4 concurrent
    python bench/serve.py --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

RUNS = {
    "digits-mlp (64 named features)": {
        "data": {"source": "sklearn", "dataset": "digits"},
        "model": {"builder": "mlp", "params": {"depth": 2, "width": 256}},
    },
    "digits-cnn (1x8x8 images)": {
        "data": {"source": "sklearn", "dataset": "digits", "as_images": True},
        "model": {"builder": "cnn", "params": {"channels": [32, 64], "hidden": 128}},
    },
}


def train(name: str, setup: dict[str, Any], root: Path) -> Path:
    from tunelab.config import parse_config
    from tunelab.deploy import export_run
    from tunelab.train._run import run_training

    cfg = parse_config(
        {
            "name": "run",
            **setup,
            "train": {"epochs": 15, "progress": "none", "tensorboard": False},
        }
    )
    run_dir = root / name.split()[0]
    run_training(cfg, run_dir=run_dir)
    export_run(run_dir, ["onnx", "int8"])
    return run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run_dir: Path, model: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "tunelab.cli",
        "serve",
        str(run_dir),
        "--model",
        model,
        "--port",
        str(port),
        "--threads",
        "1",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server for {run_dir} ({model}) did not start")


def example_rows(url: str, n: int) -> list[Any]:
    meta = httpx.get(f"{url}/metadata").json()
    rng = np.random.default_rng(0)
    if meta["input"]["kind"] == "table":
        names = [f["name"] for f in meta["input"]["features"]]
        return [
            dict(zip(names, rng.integers(0, 17, len(names)).tolist(), strict=True))
            for _ in range(n)
        ]
    shape = meta["input"]["row_shapes"][0]
    return [rng.integers(0, 17, shape).astype(float).tolist() for _ in range(n)]


def load(url: str, body: bytes, *, requests: int, concurrency: int) -> dict[str, float]:
    per_worker = requests // concurrency

    def worker(_: int) -> list[float]:
        out = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(10):  # warm-up, not counted
                c.post("/predict", content=body, headers={"content-type": "application/json"})
            for _ in range(per_worker):
                t0 = time.perf_counter()
                r = c.post("/predict", content=body, headers={"content-type": "application/json"})
                r.raise_for_status()
                out.append((time.perf_counter() - t0) * 1000)
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for chunk in pool.map(worker, range(concurrency)) for t in chunk]
    wall = time.perf_counter() - started
    p50, p99 = np.percentile(latencies, [50, 99])
    n = len(latencies)
    return {"requests": n, "req_per_s": n / wall, "p50_ms": float(p50), "p99_ms": float(p99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, setup in RUNS.items():
            run_dir = train(name, setup, Path(tmp))
            for model in ("best", "onnx", "int8"):
                proc, url = start(run_dir, model)
                try:
                    for rows in (1, 64):
                        body = json.dumps({"rows": example_rows(url, rows)}).encode()
                        stats = load(
                            url, body, requests=args.requests, concurrency=args.concurrency
                        )
                        results.append({"run": name, "model": model, "rows": rows, **stats})
                        print(results[-1], flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    print(f"\n{args.requests} requests per case, {args.concurrency} concurrent, 127.0.0.1\n")
    print("| run | model | rows/request | requests/s | rows/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['run']} | {r['model']} | {r['rows']} | {r['req_per_s']:.0f} | "
            f"{r['req_per_s'] * r['rows']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
