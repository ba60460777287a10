"""Every command of the README's "A tour of the CLI" runs as written on a fresh checkout.

The commands are read from README.md itself (so the tour and the test cannot drift apart) and run
in order, in a folder holding a copy of ``examples/``, the way a newcomer would paste them. Two
commands run until stopped: ``tunelab serve`` is started, asked ``/health`` and ``/predict``, then
stopped by its process id; ``tensorboard`` is asked to ``--inspect`` the logs instead of serving.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tour_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    tour = text.split("## A tour of the CLI", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.+?)\n```", tour, flags=re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        stdin=subprocess.DEVNULL,
    )


def _serve(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"{shlex.join(argv)} exited: {proc.stderr.read()}"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                    assert json.load(reply)["status"] == "ok"
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer /health in 90 s"
                time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/metadata", timeout=5) as reply:
            width = reply and len(json.load(reply)["model_input_shape"])
        assert width >= 1
    finally:
        proc.send_signal(signal.SIGINT)  # stop exactly the process this test started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path):
    commands = tour_commands()
    assert any(c.startswith("tunelab tune examples/") for c in commands)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    for command in commands:
        argv = shlex.split(command)
        if argv[:2] == ["tunelab", "serve"]:
            _serve(argv, tmp_path, env)
            continue
        if argv[0] == "tensorboard":
            argv = [*argv, "--inspect"]
        result = _run(argv, tmp_path, env)
        assert result.returncode == 0, (
            f"`{command}` exited {result.returncode}:\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-2000:]}"
        )
        if argv[0] == "tensorboard":
            assert "train_loss" in result.stdout or "scalars" in result.stdout
