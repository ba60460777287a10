"""Crash safety: ``kill -9`` a running ``tunelab tune``, run it again, nothing is lost or redone."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from .conftest import tiny_config


def _tunelab() -> list[str]:
    script = shutil.which("tunelab") or str(Path(sys.executable).parent / "tunelab")
    return [script] if Path(script).exists() else [sys.executable, "-m", "tunelab.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _load(db: Path) -> optuna.Study | None:
    if not db.exists():
        return None
    try:
        # Never create tables here: the process under test may be creating them right now.
        storage = optuna.storages.RDBStorage(f"sqlite:///{db}", skip_table_creation=True)
        return optuna.load_study(study_name="crash", storage=storage)
    except Exception:  # not created yet, or locked for a moment: look again
        return None


def _peek(db: Path) -> dict | None:
    """Trial states and reported epochs, read straight from SQLite (fast enough to poll)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute(
                "SELECT t.number, t.state, COUNT(v.trial_intermediate_value_id) FROM trials t "
                "LEFT JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
                "GROUP BY t.trial_id"
            ).fetchall()
    except sqlite3.Error:  # tables not created yet
        return None
    found: dict[str, list] = {"COMPLETE": [], "RUNNING": []}
    for number, state, epochs in rows:
        found.setdefault(state, []).append((number, epochs))
    return found


def test_kill_9_then_resume_loses_no_finished_trial_and_repeats_none(tmp_path):
    lrs = [0.003, 0.01, 0.03]
    train = {
        # Long enough that a trial is still running when the test looks (0.05 s polls): on an
        # idle machine with one thread (the small-model rule) 12 epochs took 0.1 s.
        "epochs": 150,
        "batch_size": 16,
        "tensorboard": False,
        "deterministic": False,  # spares each process torch's 4-second dynamo import
        "early_stopping": {"enabled": False},
        "lr": {"choice": lrs},
    }
    tune = {"trials": 3, "sampler": "grid", "pruner": "none", "progress": "plain"}
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, name="crash", train=train, tune=tune)))
    db = tmp_path / "runs" / "crash" / "study.db"

    proc = subprocess.Popen(
        [*_tunelab(), "tune", str(path)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    killed_number = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = _peek(db)
            # Kill in the middle of a trial: two finished, one running with some epochs done.
            if state is not None and len(state["COMPLETE"]) >= 2 and state["RUNNING"]:
                number, epochs = state["RUNNING"][0]
                if 1 <= epochs < 120:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_number = number
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_number is None:
            proc.kill()
        proc.wait(timeout=60)
    assert killed_number is not None, proc.stdout.read().decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL

    before = {
        t.number: (t.params, t.values, t.datetime_complete)
        for t in _load(db).trials
        if t.state == TrialState.COMPLETE
    }
    finished_files = {
        n: (tmp_path / "runs" / "crash" / "trials" / str(n) / "result.json").stat().st_mtime_ns
        for n in before
    }

    resumed = subprocess.run(
        [*_tunelab(), "tune", str(path)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    study = _load(db)
    trials = {t.number: t for t in study.trials}
    # No finished trial lost: each is still there, unchanged, and was not trained again.
    for number, (params, values, finished) in before.items():
        assert trials[number].state == TrialState.COMPLETE
        assert (trials[number].params, trials[number].values) == (params, values)
        assert trials[number].datetime_complete == finished
        result_json = tmp_path / "runs" / "crash" / "trials" / str(number) / "result.json"
        assert result_json.stat().st_mtime_ns == finished_files[number]
    # The killed trial was failed and retried with the same parameters.
    assert trials[killed_number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[killed_number].params
    # No trial repeated: every grid point completed exactly once.
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["train.lr"] for t in complete) == lrs
    assert (tmp_path / "runs" / "crash" / "best" / "model.safetensors").is_file()
