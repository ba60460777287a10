"""Where a study lives, and how a study interrupted by a crash is picked up again.

The default is ``runs/<name>/study.db`` (SQLite, an ordinary Optuna RDB storage that
``optuna-dashboard`` and ``optuna.load_study`` open); any SQLAlchemy URL works for a database
server shared by many machines. ``memory`` keeps a study in this process only.

Crash safety has two layers, both ending in Optuna's ``RetryHeartbeatStaleTrialCallback``
(which queues a fresh trial with the same parameters):

- heartbeats (``RDBStorage(heartbeat_interval=...)``): a trial whose process stopped beating for
  the grace period is failed by whichever worker looks next -- this covers other machines;
- on this machine, a RUNNING trial whose recorded process (host, pid, start time) no longer
  exists is failed at once when the study is opened again, so a resume after ``kill -9`` does
  not wait for the grace period.
"""

from __future__ import annotations

import socket
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.storages import (
    BaseStorage,
    InMemoryStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.trial import TrialState

from ..errors import FatalError

WORKER_ATTR = "worker"
MEMORY = "memory"


def storage_url(storage: str | None, run_dir: Path | str) -> str:
    """The storage URL of a run: ``storage`` as given, else the run directory's ``study.db``."""
    if storage:
        return storage
    return f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    max_retries: int = 2,
) -> BaseStorage:
    """An Optuna storage for ``url`` with heartbeats and retry of crashed trials.

    Raises :class:`FatalError` (one line) when the URL cannot be opened.
    """
    if url == MEMORY:
        return InMemoryStorage()
    if url.startswith("sqlite:///"):
        _prepare_sqlite(Path(url[len("sqlite:///") :]))
    heartbeat = heartbeat_interval or None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat,
                    grace_period=(grace_period or 2 * heartbeat) if heartbeat else None,
                    heartbeat_stale_trial_callback=(
                        RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
                        if heartbeat
                        else None
                    ),
                )
        except Exception as exc:
            # Two processes creating the tables at once: one loses the race; the tables exist
            # when it looks again.
            if "UNIQUE constraint" in str(exc) and attempt < 2:
                time.sleep(0.5)
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FatalError(f"error: cannot open storage {_redact(url)}: {first}") from None
        if url.startswith("sqlite"):
            _relax_sync(storage)
        return storage
    raise AssertionError("unreachable")


def _relax_sync(storage: RDBStorage) -> None:
    """``synchronous=NORMAL`` on every connection: in WAL mode a killed process never loses a
    committed trial (only a power cut could drop the last commits), and each commit skips an
    fsync -- the difference between ~150 ms and a few ms per trial on a slow disk.
    """

    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    import sqlalchemy  # here: a Ray trial's worker imports this module but opens no storage

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened so far did not run the pragma


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several worker processes write the same file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def _prepare_sqlite(path: Path) -> None:
    """Create the file in write-ahead-log mode so readers (dashboard, workers) never block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=60) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host, pid, process start time and torch threads.

    Recorded on each trial; host + pid + start time identify the process even if the pid is
    reused later, so a resume can tell a dead owner from a live one. ``threads`` is None in a
    process that has not loaded torch (an objective that does not use it): importing torch
    here cost every new Ray trial actor 1.6 s for a number that means nothing there.
    """
    torch = sys.modules.get("torch")
    proc = psutil.Process()
    return {
        "host": socket.gethostname(),
        "pid": proc.pid,
        "started": round(proc.create_time(), 3),
        "threads": torch.get_num_threads() if torch is not None else None,
    }


def _is_alive(identity: Any) -> bool:
    """Whether the process that wrote ``identity`` still runs (other hosts count as alive)."""
    try:
        host, pid, start = identity["host"], int(identity["pid"]), float(identity["started"])
    except (TypeError, KeyError, ValueError):
        return True
    if host != socket.gethostname():
        return True  # another machine: the heartbeat decides
    try:
        return abs(psutil.Process(pid).create_time() - start) < 1e-2
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def reclaim_orphans(study: optuna.Study, *, max_retries: int = 2) -> list[int]:
    """Fail and re-queue RUNNING trials whose process on this machine is gone.

    Returns the numbers of the trials it failed. Trials run by a live process, or by a process
    on another machine, are left alone (the heartbeat covers those).
    """
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
    failed: list[int] = []
    running = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        identity = trial.user_attrs.get(WORKER_ATTR)
        if identity is None or _is_alive(identity):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        failed.append(trial.number)
        retry(study, storage.get_trial(trial._trial_id))
    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        optuna.storages.fail_stale_trials(study)
    return failed
