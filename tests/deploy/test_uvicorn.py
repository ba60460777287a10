"""A real server: ``tunelab serve`` in its own process on 127.0.0.1, then a bounded load test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

REQUESTS = 2000
CONCURRENCY = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(image_run, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "tunelab.cli",
        "serve",
        str(image_run),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
        "--log-level",
        "warning",
    ]
    # A file, not a pipe: nobody reads a pipe during the load test, and a full one blocks uvicorn.
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer /health within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode is not None  # stopped, nothing left running


def _image() -> list:
    return np.random.default_rng(0).integers(0, 17, (8, 8)).astype(float).tolist()


def test_real_server_answers_health_metadata_predict_and_bad_input(server):
    with httpx.Client(base_url=server, timeout=10) as c:
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/metadata").json()["input"]["kind"] == "image"
        assert c.get("/docs").status_code == 200
        reply = c.post("/predict", json={"rows": [_image()] * 3})
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 3
        bad = c.post("/predict", content=b'{"rows": [[1, 2]]}')
        assert bad.status_code == 422 and "expected shape" in bad.json()["detail"]
        assert c.post("/predict", content=b"{").status_code == 422
        assert c.get("/health").status_code == 200  # still up


def test_bounded_load_all_requests_succeed(server, tmp_path, record_property):
    body = json.dumps({"rows": [_image()]}).encode()
    per_worker = REQUESTS // CONCURRENCY

    def worker(_: int) -> list[tuple[int, float]]:
        out = []
        with httpx.Client(base_url=server, timeout=30) as c:
            for _ in range(per_worker):
                t0 = time.perf_counter()
                r = c.post("/predict", content=body, headers={"content-type": "application/json"})
                out.append((r.status_code, time.perf_counter() - t0))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = [item for chunk in pool.map(worker, range(CONCURRENCY)) for item in chunk]
    wall = time.perf_counter() - started
    codes = [code for code, _ in results]
    latencies_ms = np.array([t for _, t in results]) * 1000
    assert len(results) == REQUESTS
    assert codes.count(200) == REQUESTS, {c: codes.count(c) for c in set(codes)}
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    summary = {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "req_per_s": round(REQUESTS / wall, 1),
    }
    record_property("load_test", summary)
    Path(tmp_path / "load.json").write_text(json.dumps(summary))
    print(f"\nload test: {summary}")
    assert p99 < 5000
