"""``tune.workers: N``: N processes on this machine sharing one study storage.

Worker 0 is the ``tunelab tune`` process itself; workers 1..N-1 are ``python -m
tunelab.tune._worker --standby SPEC`` processes, started as soon as the config is read (by the
CLI before its own imports, by ``run_study`` otherwise) so their start-up overlaps the
parent's; each waits for the JSON spec (the resolved config and the :class:`StudyOptions`) that
:func:`launch_helpers` writes once the study exists, before the parent prepares its data.
Each runs with ``torch.set_num_threads(cores // N)`` (so N workers do not fight over the same
cores) on the same storage URL; the storage hands out trials, the shared budget stops them all.
The parent shows the live table (polled from the storage) while it trains. Worker processes
exit on their own when the parent dies, between trials.

A fatal error (``tunelab.tune._loop.is_fatal``) stops every process: in the parent it
interrupts the helpers; a helper that hits one exits with code 2, and a watcher thread in the
parent then interrupts the parent's own trial and raises the helper's one-line message.
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
from ._options import StudyOptions
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


def write_specs(
    config: dict, options: StudyOptions, folder: Path, standby: list[Standby], progress: str
) -> list[Path]:
    """The JSON spec of each child worker (1..N-1; worker 0 is this process), at the path its
    standby process waits for: config, study options, index, threads, parent pid, progress mode,
    log file. Written atomically, since the worker is polling for it."""
    written = []
    for index, (_, path) in enumerate(standby, start=1):
        spec = {
            "config": config,
            "options": options.to_dict(),
            "worker": index,
            "threads": threads_per_worker(options.workers),
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


def launch_helpers(cfg: ExperimentConfig, options: StudyOptions, standby: list[Standby]) -> Helpers:
    """Give ``options.workers - 1`` standby processes their specs: they start at once, preparing
    their data while this process prepares its own."""
    mode = progress_mode(options.progress)
    helpers = standby[: options.workers - 1]
    # Plain lines go straight to our stdout; under the live table, workers write to log files.
    progress = "plain" if mode == "plain" else "none"
    folder = cfg.run_dir / "workers"
    specs = write_specs(config_data(cfg), options, folder, helpers, progress)
    title = f"tunelab tune {cfg.name} ({options.workers} workers)"
    return Helpers(specs, [proc for proc, _ in helpers], options.workers, mode, title)


class Helpers:
    """The helper processes of one run, launched by :func:`launch_helpers`."""

    def __init__(
        self, specs: list[Path], procs: list[subprocess.Popen], workers: int, mode: str, title: str
    ) -> None:
        self.specs, self.procs = specs, procs
        self.workers, self.mode, self.title = workers, mode, title

    def run(self, study: optuna.Study, run_here: Callable[[str], str]) -> str:
        """``run_here(progress)`` in this process (worker 0) while the helpers work; returns
        the stop reason. Any error here, or a helper's fatal one, stops them all."""
        display = (
            LiveTable(study, title=self.title) if self.mode == "rich" else contextlib.nullcontext()
        )
        threads_before = torch.get_num_threads()
        watch = HelperWatch(self.specs, self.procs)
        with _interrupt_signal() as signum:
            watch.signum = signum
            try:
                torch.set_num_threads(threads_per_worker(self.workers))
                watch.start()
                with display:
                    reason = run_here("plain" if self.mode == "plain" else "none")
                    # The budget is shared, so the others stop at their next trial; wait.
                    for p in self.procs:
                        p.wait()
                watch.stop()
            except BaseException:  # Ctrl-C, this worker failing, or a helper's fatal error
                watch.stop()
                self.interrupt()
                if watch.fatal is not None:
                    raise FatalError(watch.fatal) from None
                raise
            finally:
                torch.set_num_threads(threads_before)
        return _collect(self.specs, self.procs, reason)

    def interrupt(self) -> None:
        """Ctrl-C each helper: it re-queues its running trial, then exits."""
        _interrupt(self.procs)


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
        self.signum = signal.SIGINT  # the signal that interrupts the main thread
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            for index, (spec, p) in enumerate(zip(self.specs, self.procs, strict=True), 1):
                if p.poll() == FATAL_EXIT:
                    self.fatal = _helper_error(spec, index, p)
                    _thread.interrupt_main(self.signum)
                    return

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupt_signal():
    """The signal the watcher interrupts the main thread with, handled for the run.

    ``_thread.interrupt_main`` does nothing when the signal's handler is not Python's: a
    process whose SIGINT is ignored (started with ``&`` by a shell without job control, as a
    CI script may start it) would train on after a helper's fatal error. So the watcher uses
    SIGUSR2 with a handler that raises ``KeyboardInterrupt`` (the trial loop's Ctrl-C path:
    the running trial is re-queued), installed here and restored afterwards; SIGINT, as
    before, where that cannot be done (no SIGUSR2, not the main thread, or a SIGUSR2 handler
    Python did not install).
    """
    signum = getattr(signal, "SIGUSR2", None)
    if (
        signum is None
        or threading.current_thread() is not threading.main_thread()
        # a handler Python did not install (getsignal says None) could not be restored
        # afterwards: leave it alone
        or signal.getsignal(signum) is None
    ):
        yield signal.SIGINT
        return
    previous = signal.signal(signum, _raise_interrupt)
    try:
        yield signum
    finally:
        signal.signal(signum, previous)


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
