"""Storage: SQLite by default, any SQLAlchemy URL, and reclaiming trials of dead processes."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from tunelab.errors import FatalError
from tunelab.tune import open_storage, reclaim_orphans, storage_url, tune_objective
from tunelab.tune._storage import WORKER_ATTR, worker_identity


def test_default_storage_is_the_run_directorys_study_db_in_wal_mode(tmp_path):
    url = storage_url(None, tmp_path / "runs" / "exp")
    assert url == f"sqlite:///{(tmp_path / 'runs' / 'exp' / 'study.db').resolve()}"
    open_storage(url)
    with sqlite3.connect(tmp_path / "runs" / "exp" / "study.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_unusable_url_is_one_line_without_the_password():
    with pytest.raises(FatalError) as err:
        open_storage("nosuchdialect://alice:secret@host/db")
    message = str(err.value)
    assert "\n" not in message and "secret" not in message
    assert message.startswith("error: cannot open storage nosuchdialect://alice:***@host/db")


def _dead_pid_identity() -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return {**worker_identity(), "pid": proc.pid}


def test_running_trials_of_dead_processes_are_failed_and_retried(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=0)
    study = optuna.create_study(storage=storage, study_name="s")
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr(WORKER_ATTR, _dead_pid_identity())
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive.set_user_attr(WORKER_ATTR, worker_identity())

    assert reclaim_orphans(study) == [orphan.number]
    trials = study.get_trials()
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert trials[alive.number].state == optuna.trial.TrialState.RUNNING
    retry = trials[-1]
    assert retry.state == optuna.trial.TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == orphan.number
    assert retry.params == trials[orphan.number].params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (skipped when it cannot be started)."""
    pytest.importorskip("psycopg2")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        prefix = ["runuser", "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))
    if prefix:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    try:
        made = run(initdb, "-D", str(data), "-U", "tunelab", "--auth=trust", "-E", "UTF8")
        if made.returncode != 0:
            pytest.skip(f"initdb failed: {made.stderr.strip()[:200]}")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = run(
            pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"
        )
        if started.returncode != 0:
            pytest.skip(f"pg_ctl start failed: {started.stderr.strip()[:200]}")
        yield f"postgresql+psycopg2://tunelab@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_a_postgresql_url_holds_the_study(postgres_url):
    result = tune_objective(
        lambda trial, p: p["x"] ** 2,
        space={"x": {"low": -1.0, "high": 1.0}},
        trials=3,
        storage=postgres_url,
        study_name="pg",
    )
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    assert len(study.trials) == 3
    assert study.best_value == result.best_value
