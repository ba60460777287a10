"""The two ends of a trial on Ray: the searcher on the driver, the trainable on a worker.

Optuna's storage stays the source of truth, and only the driver's node writes it:

- :class:`StudySearch` (Ray's ``OptunaSearch``, subclassed) asks the study for each trial with
  tunelab's sampler, hands the trainable the Optuna trial's ``number`` (so it trains in
  ``trials/<number>/`` as locally) and, when the trial ends, writes its user attributes and tells
  the study COMPLETE / PRUNED / FAIL. Ray's own ``OptunaSearch.on_trial_complete`` would call a
  trial stopped early COMPLETE with its last value; here the state is the one the trial chose.
  It also keeps tunelab's budget (trials, time, epochs, grid) and the first-trials-all-fail stop.
- :class:`RayTrial` is the ``optuna.Trial`` that :class:`TrainingObjective` sees inside the
  trainable: parameters fixed by the searcher (like ``optuna.trial.FixedTrial``), user
  attributes collected and shipped back with the trial's result, ``report``/``should_prune``
  answered by :class:`PruningOracle`, an actor on the driver's node that records the value in
  the storage and asks the study's own pruner -- the same pruner, rungs and warm-up as a local
  study. Without a pruner nothing is sent per epoch; the values travel with the result.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

# Loopback only, no usage report: set before Ray is first imported (see docs/scale.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from ..errors import FatalError
from ._budget import ERROR_ATTR, Budget
from ._loop import RecordingObjective, one_line

NUMBER_KEY = "__tl_number"  # config keys the searcher adds for the trainable
TRIAL_ID_KEY = "__tl_trial_id"
ATTRS_KEY = "__tl_attrs"
STATE_KEY = "tl_state"  # result keys the trainable reports
MESSAGE_KEY = "tl_message"
REPORTS_KEY = "tl_reports"
NODE_ATTR = "node"
_PRIVATE = (NUMBER_KEY, TRIAL_ID_KEY, ATTRS_KEY)


def value_key(i: int) -> str:
    return f"tl_v{i}"


def is_fatal(exc: BaseException) -> bool:
    """tunelab's one classification (``_loop.is_fatal``, per docs/design.md) when it exists."""
    from . import _loop

    classify = getattr(_loop, "is_fatal", None)
    if classify is not None:
        return bool(classify(exc))
    return isinstance(exc, (FatalError, ImportError))


class PruningOracle:
    """Ray actor on the driver's node: ``report(trial_id, step, value) -> should prune``."""

    def __init__(self, url: str, study_name: str, pruner: optuna.pruners.BasePruner) -> None:
        from ._storage import open_storage

        self.storage = open_storage(url, heartbeat_interval=0)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage, pruner=pruner)

    def report(self, trial_id: int, step: int, value: float) -> bool:
        self.storage.set_trial_intermediate_value(trial_id, step, value)
        frozen = self.storage.get_trial(trial_id)
        return bool(self.study.pruner.prune(self.study, frozen))


class RayTrial:
    """The part of ``optuna.Trial`` a tunelab objective uses, for a trial running on Ray."""

    def __init__(
        self,
        number: int,
        trial_id: int,
        params: dict[str, Any],
        user_attrs: dict[str, Any],
        oracle: Any = None,
    ) -> None:
        self.number = number
        self._trial_id = trial_id
        self.params = params
        self.user_attrs = dict(user_attrs)
        self.written: dict[str, Any] = {}  # attributes set during this trial, shipped at the end
        self.reports: dict[int, float] = {}
        self._oracle = oracle
        self._prune = False

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value
        self.written[key] = value

    def _fixed(self, name: str) -> Any:
        if name not in self.params:
            raise ValueError(f"parameter {name!r} was not sampled for this trial")
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return float(self._fixed(name))

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return int(self._fixed(name))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._fixed(name)

    def report(self, value: float, step: int) -> None:
        self.reports[int(step)] = float(value)
        if self._oracle is not None:
            import ray

            self._prune = ray.get(self._oracle.report.remote(self._trial_id, int(step), value))

    def should_prune(self) -> bool:
        return self._prune


def node_info() -> dict[str, Any]:
    """Where this trial runs: Ray's node id, the node's address and the host name."""
    import socket

    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
    }


# The study's objective in this worker process: (object id, objective). A Ray actor runs one
# trial at a time and is reused for the next (``reuse_actors``), so the objective and the
# prepared data it holds are fetched and unpickled once per process, not once per trial.
_fetched: tuple[str, Any] | None = None


def fetch_objective(ref: Any) -> Any:
    """The object behind ``ref`` (an ``ObjectRef``), fetched once per worker process."""
    global _fetched
    import ray

    key = ref.hex()
    if _fetched is None or _fetched[0] != key:
        _fetched = (key, ray.get(ref))
    return _fetched[1]


def trainable(config: dict[str, Any], objective_ref: Any = None, oracle: Any = None) -> None:
    """One Ray Tune trial: run the study's objective on a :class:`RayTrial`, report how it ended.

    ``objective_ref`` is the ``ObjectRef`` of the objective, put in the object store once per
    study by the driver; the local executor likewise runs every trial of a process through one
    objective.
    """
    objective = fetch_objective(objective_ref)
    params = {k: v for k, v in config.items() if k not in _PRIVATE}
    trial = RayTrial(
        int(config[NUMBER_KEY]),
        int(config[TRIAL_ID_KEY]),
        params,
        json.loads(config[ATTRS_KEY]),
        oracle,
    )
    trial.set_user_attr(NODE_ATTR, node_info())
    state, values, message = "COMPLETE", [], ""
    try:
        out = RecordingObjective(objective)(trial)  # records worker identity and error attrs
        values = [float(v) for v in out] if isinstance(out, Sequence) else [float(out)]
    except optuna.TrialPruned:
        state = "PRUNED"
    except Exception as exc:
        state, message = ("FATAL" if is_fatal(exc) else "FAIL"), str(exc).strip() or one_line(exc)
    n = max(1, len(values), int(config.get("__tl_n_values", 1)))
    result: dict[str, Any] = {value_key(i): math.nan for i in range(n)}
    result.update({value_key(i): v for i, v in enumerate(values)})
    result[STATE_KEY] = state
    result[MESSAGE_KEY] = message
    result[ATTRS_KEY] = json.dumps(trial.written, default=str)
    result[REPORTS_KEY] = "" if oracle is not None else json.dumps(sorted(trial.reports.items()))
    tune.report(result)


def write_records(
    storage: Any, trial_id: int, attrs: dict[str, Any], reports: Sequence[tuple[int, float]]
) -> None:
    """Store a trial's user attributes and intermediate values in one transaction.

    Optuna's public calls commit once per attribute and per value; on an RDB storage (through
    Optuna's cache wrapper) this uses its ``*_without_commit`` writers in one session instead.
    Any other storage, or an Optuna whose internals differ, takes the public calls.
    """
    if not attrs and not reports:
        return
    backend = getattr(storage, "_backend", storage)
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        batched = isinstance(backend, optuna.storages.RDBStorage) and all(
            hasattr(backend, name)
            for name in (
                "_set_trial_attr_without_commit",
                "_set_trial_intermediate_value_without_commit",
            )
        )
    except ImportError:
        batched = False
    if not batched:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for step, value in reports:
            storage.set_trial_intermediate_value(trial_id, step, value)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )
        for step, value in reports:
            backend._set_trial_intermediate_value_without_commit(session, trial_id, step, value)


class StudySearch(OptunaSearch):
    """``OptunaSearch`` over the tunelab study (see the module doc)."""

    def __init__(
        self,
        study: optuna.Study,
        space: dict[str, Any],
        budget: Budget,
        *,
        max_consecutive_failures: int = 5,
        max_retries: int = 2,
    ) -> None:
        directions = [d.name.lower() for d in study.directions]
        modes = ["min" if d == "minimize" else "max" for d in directions]
        n = len(directions)
        super().__init__(
            space=space,
            metric=value_key(0) if n == 1 else [value_key(i) for i in range(n)],
            mode=modes[0] if n == 1 else modes,
            sampler=study.sampler,
            study_name=study.study_name,
            storage=study._storage,
        )
        self.budget = budget
        self.n_values = n
        self.max_consecutive_failures = max_consecutive_failures
        self.max_retries = max_retries
        self.stop_reason: str | None = None
        self.fatal: str | None = None
        self.failures: list[str] = []
        self.told: list[int] = []  # Optuna trial numbers finished in this session, in order
        # Re-dispatching a trial Ray gave up on (see ``on_trial_complete``): the config each
        # Optuna trial was handed, the trials waiting to run again, and how often each did.
        self._configs: dict[int, dict[str, Any]] = {}
        self._redo: list[optuna.Trial] = []
        self.redispatched: dict[int, int] = {}
        self._live: set[str] = set()  # Ray trial ids handed out and not complete yet

    # Optuna's storage is the state to resume from; Ray's searcher checkpoints are not used.
    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.fatal is not None:
            return Searcher.FINISHED
        if self._redo:
            # The same Optuna trial (number, parameters, directory) under a new Ray trial: it is
            # still RUNNING in the storage, so the budget already counts it.
            ot_trial = self._redo.pop(0)
            self._ot_trials[trial_id] = ot_trial
            self._live.add(trial_id)
            return dict(self._configs[ot_trial.number])
        reason = self.budget.exhausted(self._ot_study)
        if reason is not None:
            self.stop_reason = self.stop_reason or reason
            # Not FINISHED while a trial runs: Ray asks a finished searcher nothing more, and a
            # running trial may still be lost with its node and need a new Ray trial.
            return None if self._live else Searcher.FINISHED
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials[trial_id]
        full = {
            **(config or {}),
            NUMBER_KEY: ot_trial.number,
            TRIAL_ID_KEY: ot_trial._trial_id,
            ATTRS_KEY: json.dumps(ot_trial.user_attrs, default=str),
            "__tl_n_values": self.n_values,
        }
        self._configs[ot_trial.number] = full
        self._live.add(trial_id)
        return dict(full)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return None  # values reach the study through the pruning oracle or the final result

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self._live.discard(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        result = result or {}
        storage = self._ot_study._storage
        tid = ot_trial._trial_id
        state = result.get(STATE_KEY)
        if state is None and error and self._redispatch(ot_trial):
            return
        attrs = json.loads(result.get(ATTRS_KEY) or "{}")
        if state is None and error:
            # Ray gave up on it and so did the searcher: its worker died on every try.
            tries = 1 + self.redispatched.get(ot_trial.number, 0)
            attrs[ERROR_ATTR] = (
                f"RayTrialError: the trial's worker died ({tries} Ray trial(s), each retried up "
                "to Ray's max_failures)"
            )
        reports = [(int(s), float(v)) for s, v in json.loads(result.get(REPORTS_KEY) or "[]")]
        # Everything the trial recorded goes in one transaction (one commit, not one per
        # attribute and epoch): these writes were most of what tunelab added per trial.
        write_records(storage, tid, attrs, reports)
        try:
            if state == "COMPLETE":
                values = [float(result[value_key(i)]) for i in range(self.n_values)]
                frozen = self._ot_study.tell(ot_trial, values if self.n_values > 1 else values[0])
            elif state == "PRUNED":
                frozen = self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            elif state in ("FAIL", "FATAL"):
                frozen = self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                if state == "FATAL":
                    self.fatal = str(result.get(MESSAGE_KEY) or "error: a trial failed fatally")
            elif error:
                frozen = self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            else:
                # Stopped from outside (fatal stop, Ctrl-C): lost, not failed by itself; queue a
                # retry with the same parameters for the next run, as a crash is locally.
                frozen = self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                with warnings.catch_warnings():  # "experimental" in Optuna's words
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(self.max_retries)
                retry(self._ot_study, frozen)
                return
        except (ValueError, RuntimeError) as exc:  # e.g. already finished by someone else
            self.failures.append(one_line(exc))
            return
        self.told.append(ot_trial.number)
        # ``tell`` returns the stored trial (it may have made a NaN COMPLETE a FAIL): no re-read.
        self._count_failures(frozen)

    def _redispatch(self, ot_trial: optuna.Trial) -> bool:
        """Queue ``ot_trial`` to run again under a new Ray trial; False once it ran out of tries.

        Ray gives a trial up with ``error`` and no result only when its worker process or node
        died (the trainable catches the objective's own errors). That happens within
        ``max_failures`` too: when a node dies, each pending call on its actor fails on its own,
        the first puts the trial back to PENDING for a retry, and Ray 2.60 gives up a PENDING
        trial on the next failure whatever its count (``_process_trial_failure``). So the
        searcher re-dispatches it itself, up to ``max_retries`` times (``tune.max_retries``,
        what a local study allows a trial lost with its process).
        """
        done = self.redispatched.get(ot_trial.number, 0)
        if (
            self.fatal is not None
            or done >= self.max_retries
            or ot_trial.number not in self._configs
        ):
            return False
        self.redispatched[ot_trial.number] = done + 1
        self._redo.append(ot_trial)
        return True

    def _count_failures(self, frozen: optuna.trial.FrozenTrial) -> None:
        if frozen.state != TrialState.FAIL:
            self.failures.clear()
            return
        self.failures.append(str(frozen.user_attrs.get(ERROR_ATTR, "unknown error")))
        if self.fatal is None and len(self.failures) >= self.max_consecutive_failures:
            done = self._ot_study._storage.get_all_trials(
                self._ot_study._study_id,
                deepcopy=False,
                states=(TrialState.COMPLETE, TrialState.PRUNED),
            )
            if not done:
                self.fatal = (
                    f"error: the first {len(self.failures)} trials all failed, stopping the "
                    f"study; last error: {self.failures[-1]}"
                )


class FatalStopper(Stopper):
    """Stops every trial once the searcher has seen a fatal error."""

    def __init__(self, search: StudySearch) -> None:
        self.search = search

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.search.fatal is not None
