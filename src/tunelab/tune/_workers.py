"""``tune.workers: N``: N processes on this machine sharing one study storage.

Worker 0 is the ``tunelab tune`` process itself, which has already imported torch and prepared
the data; workers 1..N-1 are ``python -m tunelab.tune._worker --standby SPEC`` processes,
started as soon as the config is read (by the CLI before its own imports, by ``run_study``
otherwise) so their start-up overlaps the parent's; each waits for the JSON spec with the
resolved config that the parent writes here. Each runs with ``torch.set_num_threads(cores //
N)`` (so N workers do not fight over the same cores) on the same storage URL; the storage hands
out trials, the shared budget stops them all. The parent shows the live table (polled from the
storage) while it trains. Worker processes exit on their own when the parent dies, between
trials.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from ..config import ExperimentConfig
from ..errors import FatalError
from ._progress import LiveTable, progress_mode
from ._space import config_data
from ._standby import Standby


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, available_cores() // workers)


def write_specs(cfg: ExperimentConfig, standby: list[Standby], progress: str) -> list[Path]:
    """The JSON spec of each child worker (1..N-1; worker 0 is this process), at the path its
    standby process waits for: config, index, threads, parent pid, progress mode, log file.
    Written atomically, since the worker is polling for it."""
    folder = cfg.run_dir / "workers"
    n = cfg.tune.workers
    config = config_data(cfg)
    written = []
    for index, (_, path) in enumerate(standby, start=1):
        spec = {
            "config": config,
            "worker": index,
            "threads": threads_per_worker(n),
            "parent_pid": os.getpid(),
            "progress": progress,
            "log": str(folder / f"worker-{index}.log") if progress == "none" else None,
        }
        path.with_suffix(".result.json").unlink(missing_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def run_workers(
    cfg: ExperimentConfig,
    study: optuna.Study,
    run_here: Callable[[str], str],
    standby: list[Standby],
) -> str:
    """Run ``cfg.tune.workers`` workers: ``run_here(progress)`` in this process (worker 0) and
    the others in the ``standby`` processes (N-1 of them); returns the stop reason."""
    mode = progress_mode(cfg.tune.progress)
    helpers = standby[: cfg.tune.workers - 1]
    # Plain lines go straight to our stdout; under the live table, workers write to log files.
    specs = write_specs(cfg, helpers, "plain" if mode == "plain" else "none")
    procs = [proc for proc, _ in helpers]
    title = f"tunelab tune {cfg.name} ({cfg.tune.workers} workers)"
    display = LiveTable(study, title=title) if mode == "rich" else contextlib.nullcontext()
    threads_before = torch.get_num_threads()
    watch = HelperWatch(specs, procs)
    try:
        torch.set_num_threads(threads_per_worker(cfg.tune.workers))
        watch.start()
        with display:
            reason = run_here("plain" if mode == "plain" else "none")
            # The budget is shared, so the others stop at their next trial; wait for them.
            for p in procs:
                p.wait()
        watch.stop()
    except BaseException:  # Ctrl-C, this worker failing, or a helper's fatal error
        watch.stop()
        _interrupt(procs)
        if watch.fatal is not None:
            raise FatalError(watch.fatal) from None
        raise
    finally:
        torch.set_num_threads(threads_before)
    return _collect(specs, procs, reason)


FATAL_EXIT = 2
"""A helper's exit code for a fatal error (``_worker.py``): the whole study stops."""


class HelperWatch(threading.Thread):
    """Watches the helpers while the parent trains; the first that exits with
    :data:`FATAL_EXIT` interrupts the parent's main thread (its running trial is re-queued, as
    on Ctrl-C) and leaves its one-line error in ``fatal``."""

    def __init__(self, specs: list[Path], procs: list[subprocess.Popen]) -> None:
        super().__init__(name="tunelab-helper-watch", daemon=True)
        self.specs, self.procs = specs, procs
        self.fatal: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            for index, (spec, p) in enumerate(zip(self.specs, self.procs, strict=True), 1):
                if p.poll() == FATAL_EXIT:
                    self.fatal = _helper_error(spec, index, p)
                    _thread.interrupt_main()
                    return

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()


def _helper_error(spec: Path, index: int, p: subprocess.Popen) -> str:
    result = spec.with_suffix(".result.json")
    data = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else {}
    return data.get("error") or f"error: worker {index} exited with code {p.returncode}"


def _interrupt(procs: list[subprocess.Popen]) -> None:
    """Ctrl-C: each worker re-queues its running trial, then exits."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _collect(specs: list[Path], procs: list[subprocess.Popen], reason: str) -> str:
    reasons, errors = [reason] if reason else [], []
    for index, (spec, p) in enumerate(zip(specs, procs, strict=True), start=1):
        result = spec.with_suffix(".result.json")
        data = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else {}
        if p.returncode == FATAL_EXIT:  # it ended after the watcher stopped looking
            raise FatalError(_helper_error(spec, index, p))
        if p.returncode == 0 and data.get("reason"):
            reasons.append(data["reason"])
        else:
            errors.append(data.get("error") or f"worker {index} exited with code {p.returncode}")
    if not reasons:
        raise FatalError(f"error: every worker failed; {errors[0]}")
    return reasons[0]
