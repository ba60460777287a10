"""The ``ray`` trial executor: the same study, its trials run by Ray Tune on a cluster.

``run_ray_study(cfg, bundle, run_dir, address=...)`` does for a Ray cluster what ``work`` does
for one process (``_config_study.py``), and returns why the study stopped; the caller then
summarises and copies ``best/`` exactly as for the local backend.

- **Search**: Ray's ``OptunaSearch`` (subclassed in ``_ray_trial.StudySearch``) over the config's
  spaces (``_space.to_distributions``) with the study's own sampler (``_samplers.make_sampler``,
  set by ``build_study``), writing to the run's study storage under the run's study name --
  ``study.db``, importances, ``tunelab report``, compress and export read it unchanged.
- **Trials**: ``ray.tune.Tuner`` runs :func:`_ray_trial.trainable` under
  ``tune.with_resources(..., {"cpu": 1, "gpu": 0})``; it calls the very ``TrainingObjective`` a
  local study runs, on a trial object whose parameters the searcher fixed, so each trial trains
  in ``trials/<number>/`` with the same metrics, TensorBoard, findings and ``best/``, and
  records the node it ran on (user attribute ``node``).
- **Multi-fidelity: tunelab's pruner, not Ray's schedulers.** Every epoch the trial asks the
  study's pruner (``tune.pruner``: median, percentile, asha, hyperband, sized by
  ``_pruners.make_pruner``) through a small actor on the driver's node, which writes the value to
  the storage. The scheduler stays FIFO. Why: the pruned/complete decision, the rungs, warm-up,
  the fold-aware steps and the "not in the last rung" rule are the local ones, so a study means
  the same on either backend and a study can move between them; a pruned trial is PRUNED in
  the storage (Ray's ASHA stop would reach ``OptunaSearch`` as a COMPLETE trial with a
  half-trained value); and successive halving is asynchronous in both, so nothing is lost.
  The cost is one actor call per epoch (about a millisecond), none when ``pruner: none``.
- **Data shipped once**: the objective, which holds the prepared ``DataBundle``, goes into the
  object store once per study (``ray.put``), and each worker process fetches and unpickles it
  once, for all the trials it runs (``_ray_trial.fetch_objective``; with
  ``tune.with_parameters`` every trial fetched and unpickled it again).
- **Shared storage**: only the driver's node touches the study storage (SQLite is fine there);
  the run directory must be the same path on every node (a shared file system). At start a tiny
  task on each node reads a probe file the driver wrote; any node that cannot see it stops the
  study with one :class:`FatalError` line.
- **Faults**: a trial whose worker or node dies is retried by Ray on another node
  (``FailureConfig(max_failures)``, same Optuna trial, its directory redone); if Ray gives it
  up anyway (it does when a second call of the dead actor fails after the first re-queued the
  trial, whatever ``max_failures`` says), the searcher runs the same Optuna trial again under a
  new Ray trial, up to ``tune.max_retries`` times (``StudySearch._redispatch``). Finished
  trials are in the storage the moment they end and are never redone. A killed driver is resumed by
  the same call: trials it left RUNNING are failed and re-queued with the same parameters (as
  ``reclaim_orphans`` does locally) and the budget counts what is done. One driver per study.
- **Errors**: a trial's own exception -> FAIL with ``error``; ``FatalError`` inside a trial ->
  FAIL, every trial stopped, the error raised here; NaN/diverging -> PRUNED with ``reason`` and
  ``findings`` (the objective's own rule).
- **Loopback here**: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and ``RAY_USAGE_STATS_ENABLED=0``
  are set (if unset) before Ray is imported, and ``ray.init`` gets ``include_dashboard=False``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing

import optuna
from optuna.trial import TrialState

from ..config import ExperimentConfig
from ..data import DataBundle
from ..errors import ConfigError, FatalError
from ._budget import Budget
from ._objective import TrainingObjective
from ._space import config_spaces, to_distributions

DEFAULT_RESOURCES = {"cpu": 1, "gpu": 0}
# One lost node fails every pending call of the trial on it at once, and Ray counts each (4
# at once were seen in CI); a trial's own errors never reach Ray (they are recorded FAIL in the
# study), so these retries are for the infrastructure alone. What Ray gives up regardless of
# this count, the searcher re-dispatches (``_ray_trial.StudySearch._redispatch``).
DEFAULT_MAX_FAILURES = 10


def run_ray_study(
    cfg: ExperimentConfig,
    bundle: DataBundle | None,
    run_dir: Path | str,
    *,
    address: str | None = None,
    resources: dict[str, float] | None = None,
    max_concurrent: int | None = None,
    max_failures: int = DEFAULT_MAX_FAILURES,
) -> str:
    """Run the study of ``cfg`` on Ray; returns why it stopped.

    ``run_study`` with ``tune.backend: ray`` does the same and then summarises the study and
    copies ``best/``; this is the executor alone, for a caller that has the run directory.

    Args:
        cfg: the resolved study config.
        bundle: prepared data (default: prepared here once).
        run_dir: the run directory (``cfg.run_dir``), the same path on every node.
        address: ``None`` starts a local Ray cluster; ``"auto"``, ``"HOST:PORT"`` or
            ``"ray://HOST:10001"`` connects to a running one.
        resources: per trial, ``{"cpu": 1, "gpu": 0}`` by default.
        max_concurrent: trials at once (default: as many as the cluster's resources hold).
        max_failures: times Ray retries a trial whose worker or node died.
    """
    from ._config_study import prepare_objective
    from ._engine import build_study, make_budget
    from ._options import StudyOptions

    if Path(run_dir).resolve() != Path(cfg.run_dir).resolve():
        raise ConfigError(f"config error: run_dir {run_dir} is not the config's {cfg.run_dir}")
    options = StudyOptions.from_config(cfg)
    spaces = config_spaces(cfg)
    opened = build_study(spaces, options)
    objective = prepare_objective(cfg, options, bundle, spaces)
    executor = RayExecutor(
        address=address,
        resources=resources,
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        max_consecutive_failures=cfg.tune.max_consecutive_failures,
        max_retries=cfg.tune.max_retries,
    )
    budget = make_budget(spaces, options, opened.sampler_name)
    executor.run(opened.study, objective, budget, options)
    return executor.stop_reason or "stopped"


class RayExecutor:
    """``TrialExecutor`` "ray" (docs/design.md): runs a study's trials as Ray Tune trials.

    ``objective`` is a :class:`TrainingObjective` (its spaces come from its config) or any
    picklable ``objective(trial)`` with a ``distributions`` attribute (name -> Optuna
    distribution). ``options`` (``StudyOptions``) is read only for ``storage``.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        resources: dict[str, float] | None = None,
        max_concurrent: int | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
        max_consecutive_failures: int = 5,
        max_retries: int = 2,
        probe: bool = True,
    ) -> None:
        self.address = address
        self.resources = {**DEFAULT_RESOURCES, **(resources or {})}
        self.max_concurrent = max_concurrent
        self.max_failures = max_failures
        self.max_consecutive_failures = max_consecutive_failures
        self.max_retries = max_retries
        self.probe = probe
        self.stop_reason: str | None = None
        self.told: list[int] = []

    def run(self, study: optuna.Study, objective: Any, budget: Budget, options: Any) -> None:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter

        from ._ray_trial import FatalStopper, PruningOracle, StudySearch, trainable

        url = storage_url_of(study, options)
        space = distributions_of(objective)
        run_dir = _run_dir_of(objective)
        started = connect(self.address)
        oracle = None
        try:
            if self.probe and run_dir is not None:
                check_reachable(run_dir)
            fail_running(study, max_retries=self.max_retries)
            budget.restart_clock()
            if (
                not isinstance(study.pruner, optuna.pruners.NopPruner)
                and len(study.directions) == 1
            ):
                oracle = (
                    ray.remote(num_cpus=0)(PruningOracle)
                    .options(scheduling_strategy=_here())
                    .remote(url, study.study_name, study.pruner)
                )
            search = StudySearch(
                study,
                space,
                budget,
                max_consecutive_failures=self.max_consecutive_failures,
                max_retries=self.max_retries,
            )
            limit = self.max_concurrent or slots(self.resources)
            objective_ref = ray.put(objective)
            storage_path = (run_dir or Path(tempfile.gettempdir()) / "tunelab") / "ray"
            tuner = tune.Tuner(
                tune.with_resources(
                    functools.partial(trainable, objective_ref=objective_ref, oracle=oracle),
                    {k: v for k, v in self.resources.items() if v},
                ),
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(search, max_concurrent=limit),
                    num_samples=-1,
                    reuse_actors=True,
                    trial_dirname_creator=_dirname,
                ),
                run_config=tune.RunConfig(
                    name=f"session-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                    storage_path=str(storage_path),
                    failure_config=tune.FailureConfig(max_failures=self.max_failures),
                    stop=FatalStopper(search),
                    verbose=0,
                    log_to_file=False,
                ),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tuner.fit()
            self.told = list(search.told)
            if search.fatal is not None:
                raise FatalError(search.fatal)
            self.stop_reason = search.stop_reason or budget.exhausted(study) or "stopped"
        finally:
            if oracle is not None:
                ray.kill(oracle)
            if started:
                ray.shutdown()


def connect(address: str | None) -> bool:
    """``ray.init`` (a local cluster, or ``address``) unless Ray is up; True if it started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None or not address.startswith("ray://"):
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FatalError(
            f"error: cannot connect to the Ray cluster at {address}: {first}"
        ) from None
    return True


def check_reachable(run_dir: Path, timeout_s: float = 60.0) -> None:
    """Every alive node sees ``run_dir`` (a probe file the driver wrote), else FatalError."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    run_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    probe = run_dir / f".ray-probe-{token}"
    probe.write_text(token, encoding="utf-8")

    def sees(path: str, expected: str) -> bool:
        try:
            return Path(path).read_text(encoding="utf-8") == expected
        except OSError:
            return False

    task = ray.remote(num_cpus=0, max_retries=0)(sees)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        pending = {
            task.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(probe), token): n
            for n in nodes
        }
        for ref, node in pending.items():
            try:
                ok = ray.get(ref, timeout=timeout_s)
            except Exception:
                ok = False
            if not ok:
                where = node.get("NodeManagerAddress", "?")
                raise FatalError(
                    f"error: the run directory {run_dir} is not reachable from Ray node {where} "
                    f"({node['NodeID'][:8]}); multi-machine runs need it on a file system every "
                    "node mounts at the same path (see docs/scale.md)"
                )
    finally:
        probe.unlink(missing_ok=True)


def fail_running(study: optuna.Study, *, max_retries: int = 2) -> list[int]:
    """Fail and re-queue (same parameters) every RUNNING trial: left by a driver that died."""
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
    failed = []
    running = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed.append(trial.number)
        retry(study, storage.get_trial(trial._trial_id))
    return failed


def slots(resources: dict[str, float]) -> int:
    """Trials the cluster can run at once with ``resources`` each."""
    import ray

    total = ray.cluster_resources()
    fits = [
        math.floor(total.get(key.upper() if key in ("cpu", "gpu") else key, 0) / need)
        for key, need in resources.items()
        if need
    ]
    return max(1, min(fits)) if fits else 1


def storage_url_of(study: optuna.Study, options: Any = None) -> str:
    """The study's database URL (``StudyOptions.storage`` when given); memory is refused."""
    url = getattr(options, "storage", None)
    if url:
        return str(url)
    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    url = getattr(backend, "url", None)
    if not url:
        raise ConfigError(
            "config error: tune.storage = 'memory' — the ray backend needs a database storage; "
            "leave it unset (SQLite in the run directory) or give a database URL"
        )
    return str(url)


def distributions_of(objective: Any) -> dict[str, Any]:
    if isinstance(objective, TrainingObjective):
        return to_distributions(config_spaces(objective.cfg))
    space = getattr(objective, "distributions", None)
    if not space:
        raise TypeError("the ray executor needs a TrainingObjective or an objective.distributions")
    return dict(space)


def _run_dir_of(objective: Any) -> Path | None:
    run_dir = getattr(objective, "run_dir", None)
    if run_dir is None:
        return None
    objective.run_dir = Path(run_dir).resolve()  # Ray workers start in other directories
    return objective.run_dir


def _here() -> Any:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"
