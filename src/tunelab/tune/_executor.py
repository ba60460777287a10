"""The executor seam: how a study's trials get run (``tune.executor``; see docs/design.md).

A study is built once (``build_study``), then handed to an executor together with the
objective, the budget and the :class:`StudyOptions`; the executor runs trials until the budget
is used up and returns. Everything after -- the summary, ``best/`` -- is the caller's, so every
executor ends the same way.

- ``local`` (:class:`LocalExecutor`): the trial loop in this process (``run_trials``), with
  ``--workers N`` helper processes on this machine sharing the storage (``_workers.py``).
- ``ray`` (:class:`tunelab.tune._ray.RayExecutor`, ``tune.backend: ray``): the same objective
  inside Ray Tune trials on a cluster, Optuna's storage the source of truth (docs/scale.md).
- ``population`` (:class:`tunelab.tune._population.PopulationExecutor`, ``tune.executor:
  population``): asks K trials at once and trains them as one vectorised population,
  ``tell``-ing each.

An executor may set ``stop_reason`` (why it stopped, shown in the summary); if it does not,
the caller asks the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from ..config import TuneConfig
from ._budget import Budget
from ._options import StudyOptions

if TYPE_CHECKING:
    from ._objective import TrainingObjective
    from ._workers import Helpers


class TrialExecutor(Protocol):
    """Runs the trials of a built study until ``budget`` says stop."""

    name: str  # "local" | "population" | "ray"

    def run(
        self,
        study: optuna.Study,
        objective: TrainingObjective,
        budget: Budget,
        options: StudyOptions,
    ) -> None: ...


class LocalExecutor:
    """Today's loop: ``run_trials`` in this process, plus the ``--workers`` helpers if given.

    Args:
        helpers: helper processes already given their specs (``_workers.launch_helpers``);
            ``None`` runs every trial in this process.
    """

    name = "local"

    def __init__(self, helpers: Helpers | None = None) -> None:
        self.helpers = helpers
        self.stop_reason = ""

    def run(
        self,
        study: optuna.Study,
        objective: TrainingObjective | Callable[[optuna.Trial], Any],
        budget: Budget,
        options: StudyOptions,
    ) -> None:
        from ._engine import execute

        if self.helpers is None:
            self.stop_reason = execute(study, objective, budget, options)
            return

        def run_here(progress: str) -> str:
            return execute(study, objective, budget, options, progress=progress)

        self.stop_reason = self.helpers.run(study, run_here)


def make_executor(tune: TuneConfig | None = None, *, helpers: Helpers | None = None) -> Any:
    """The executor a ``tune`` section asks for (``None``: the defaults, ``local``).

    ``tune.backend`` decides where trials run (this machine, or a Ray cluster), then
    ``tune.executor`` how (one trial at a time per worker, or a vectorised population).
    """
    tune = tune if tune is not None else TuneConfig()
    if tune.backend == "ray":
        from ._ray import RayExecutor

        return RayExecutor(
            address=tune.address,
            resources=tune.resources.model_dump(),
            max_concurrent=tune.max_concurrent,
            max_failures=tune.ray_max_failures,
            max_consecutive_failures=tune.max_consecutive_failures,
            max_retries=tune.max_retries,
        )
    if tune.executor == "population":
        from ._population import PopulationExecutor

        return PopulationExecutor(population=tune.population, helpers=helpers)
    return LocalExecutor(helpers)
