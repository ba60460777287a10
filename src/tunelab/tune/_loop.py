"""One worker's trial loop: start trials until the budget says stop.

Each trial goes through ``study.optimize(n_trials=1)`` so that Optuna does everything it
normally does (sampler, pruner, heartbeat thread, stale-trial check, state changes); between
trials the loop checks the shared budget. A trial that raises is recorded failed with its error
and the loop goes on -- unless the error is systematic (:func:`is_fatal`): then the trial is
recorded failed and the error propagates at once, since every later trial would hit it too. A
:class:`KeyboardInterrupt` re-queues the interrupted trial (same parameters) before it
propagates, so the next run retries it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: one worker per machine is safe, several may overshoot by one
    fcntl = None  # type: ignore[assignment]

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ..errors import FatalError
from ._budget import ERROR_ATTR, Budget
from ._storage import WORKER_ATTR, worker_identity

StudyCallback = Callable[[optuna.Study, FrozenTrial], None]


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc``, raised inside a trial, should stop the whole study.

    Fatal: :class:`FatalError` and its subclasses (``ConfigError``: a bad config value found
    mid-trial; ``DataError``: missing or bad data) and ``ImportError`` (a custom builder's
    missing dependency) -- the next trial would fail the same way. Anything else (out of
    memory, a bad combination of values, :class:`TrialFailed`) belongs to that trial alone.
    """
    return isinstance(exc, (FatalError, ImportError))


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` -- what a trial's ``error`` attribute holds."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def fatal_message(exc: BaseException) -> str:
    """The one line the CLI prints for a fatal error (:func:`is_fatal`)."""
    if isinstance(exc, FatalError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"error: {one_line(exc)}"


class StartLock:
    """Makes "is there budget left? then start a trial" one step across local processes.

    Two workers that check the budget at the same moment would both start a trial and overshoot
    it (or, with grid search, evaluate one point twice). The lock (``flock`` on a file next to
    the study) is taken before the check and released by the objective once its trial exists
    (RUNNING, grid point assigned). Without a path it does nothing (one process).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> None:
        if self.path is None or fcntl is None:
            return
        self._handle = open(self.path, "a+")  # noqa: SIM115 (held across calls)
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class RecordingObjective:
    """Wraps an ``objective(trial)``: records which process runs it and why it failed.

    Optuna catches the exception (``catch=(Exception,)``) and marks the trial failed; this
    wrapper first stores ``error`` (one line) and ``error_type`` as user attributes, so the
    failure is visible in the table, the dashboard and the result, and frees the GPU cache after
    an out-of-memory error so the next trial can run. A fatal error (:func:`is_fatal`) is kept
    in ``fatal`` so that the loop re-raises it once Optuna has recorded the trial.
    """

    def __init__(
        self, objective: Callable[[optuna.Trial], Any], lock: StartLock | None = None
    ) -> None:
        self.objective = objective
        self.identity = worker_identity()
        self.lock = lock or StartLock(None)
        self.fatal: BaseException | None = None

    def __call__(self, trial: optuna.Trial) -> Any:
        trial.set_user_attr(WORKER_ATTR, self.identity)
        self.lock.release()  # the trial is RUNNING: other workers now count it
        try:
            return self.objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr(ERROR_ATTR, one_line(exc))
            trial.set_user_attr("error_type", type(exc).__name__)
            _free_accelerator_memory(exc)
            if is_fatal(exc):
                self.fatal = exc
            raise


def _free_accelerator_memory(exc: BaseException) -> None:
    if "out of memory" not in str(exc).lower():
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    budget: Budget,
    *,
    callbacks: Sequence[StudyCallback] = (),
    max_consecutive_failures: int = 5,
    max_retries: int = 2,
    parent_pid: int | None = None,
    lock_path: Path | None = None,
) -> str:
    """Run trials of ``study`` until ``budget`` is used up; returns why it stopped.

    Args:
        study: the study (any storage).
        objective: ``objective(trial) -> value(s)``.
        budget: the shared limits.
        callbacks: Optuna study callbacks, called after each trial.
        max_consecutive_failures: stop with :class:`FatalError` when this many trials in a row
            failed and none in the study has succeeded (a systematic error, not a bad corner).
        max_retries: how often an interrupted trial is re-queued.
        parent_pid: for worker processes: stop when the parent process has gone away.
        lock_path: a file that serialises trial starts among local worker processes.
    """
    lock = StartLock(lock_path)
    wrapped = RecordingObjective(objective, lock)
    failures: list[str] = []
    finished: list[FrozenTrial] = []

    def remember(_study: optuna.Study, trial: FrozenTrial) -> None:
        finished.append(trial)

    while True:
        if parent_pid is not None and os.getppid() != parent_pid:
            return "parent process gone"
        lock.acquire()
        try:
            reason = budget.exhausted(study)
            if reason is not None:
                return reason
            study.optimize(
                wrapped,
                n_trials=1,
                catch=(Exception,),
                callbacks=[remember, *callbacks],
                gc_after_trial=False,
            )
        except KeyboardInterrupt:
            _requeue_interrupted(study, wrapped.identity, max_retries)
            raise
        finally:
            lock.release()  # normally released by the objective already; this is a no-op then
        if wrapped.fatal is not None:
            raise wrapped.fatal  # the trial is recorded FAIL with its error; stop the study
        if not finished:
            continue
        last = finished.pop()
        if last.state == TrialState.FAIL:
            failures.append(str(last.user_attrs.get(ERROR_ATTR, "unknown error")))
        else:
            failures.clear()
        if len(failures) >= max_consecutive_failures and not _any_success(study):
            raise FatalError(
                f"error: the first {len(failures)} trials all failed, stopping the study; "
                f"last error: {failures[-1]}"
            )


def _last_trial_of(study: optuna.Study, identity: str) -> FrozenTrial | None:
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    mine = [t for t in trials if t.user_attrs.get(WORKER_ATTR) == identity]
    return max(mine, key=lambda t: t.number) if mine else None


def _any_success(study: optuna.Study) -> bool:
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return bool(study._storage.get_all_trials(study._study_id, deepcopy=False, states=states))


def _requeue_interrupted(study: optuna.Study, identity: str, max_retries: int) -> None:
    """Ctrl-C leaves the running trial FAIL without an error: queue a retry like a crash."""
    last = _last_trial_of(study, identity)
    if last is not None and last.state == TrialState.FAIL and ERROR_ATTR not in last.user_attrs:
        RetryHeartbeatStaleTrialCallback(max_retry=max_retries)(study, last)
