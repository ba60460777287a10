"""The ``tune`` section: samplers, pruners, budget, CV, objectives, workers, storage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import Section

SAMPLERS = ("auto", "grid", "random", "tpe", "gp", "cmaes", "qmc", "nsga2")
PRUNERS = ("none", "median", "percentile", "asha", "hyperband")


class CVConfig(Section):
    """Cross-validation: the objective becomes the mean over folds."""

    folds: int = Field(0, ge=0)
    stratified: bool = True

    @field_validator("folds")
    @classmethod
    def _zero_or_at_least_two(cls, value: int) -> int:
        if value == 1:
            raise ValueError("tune.cv.folds must be 0 (off) or at least 2, got 1")
        return value


class ResourcesConfig(Section):
    """What one trial takes on a Ray cluster (``tune.backend: ray``)."""

    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)


class PBTConfig(Section):
    """Population-based training on top of ``tune.executor: population`` (docs/tune.md)."""

    # Every ``interval`` epochs of a member, the bottom ``quantile`` of a population's running
    # members (by tune.metric) copy the weights and optimiser state of a random member of the
    # top ``quantile`` and its lr and weight decay, each multiplied by 1 - perturb or 1 + perturb.
    interval: int = Field(4, ge=1)
    quantile: float = Field(0.25, gt=0, lt=0.5)
    perturb: float = Field(0.2, ge=0, lt=1)


class ObjectiveConfig(Section):
    """One objective of a (multi-objective) study."""

    metric: str
    direction: Literal["maximize", "minimize"]


class TuneConfig(Section):
    """The hyperparameter search.

    The budget is whichever of ``trials``, ``timeout`` and ``max_total_epochs`` runs out first;
    all three count the whole study, so a resumed run only does what is left.
    """

    trials: int = Field(20, gt=0)
    # A duration: seconds as a number, or text such as ``90s``, ``10m``, ``1.5h``.
    timeout: str | int | float | None = None
    max_total_epochs: int | None = Field(None, gt=0)
    sampler: Literal["auto", "grid", "random", "tpe", "gp", "cmaes", "qmc", "nsga2"] = "auto"
    pruner: Literal["none", "median", "percentile", "asha", "hyperband"] = "asha"
    metric: str = "val_loss"
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    objectives: list[ObjectiveConfig] | None = None
    workers: int = Field(1, ge=1)
    storage: str | None = None
    # How trials run (docs/design.md, "the executor seam"): one at a time per worker, or K at
    # once as one vectorised population (``population``: K, or ``auto`` from the model's size).
    executor: Literal["local", "population"] = "local"
    population: int | Literal["auto"] = "auto"
    pbt: PBTConfig | None = None  # population-based training (population executor only)
    # Where trials run: this machine (``--workers``) or a Ray cluster (docs/scale.md).
    backend: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: None starts a local cluster; "auto", "HOST:PORT", "ray://"
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    max_concurrent: int | None = Field(None, gt=0)
    ray_max_failures: int = Field(10, ge=0)  # a lost node counts once per pending call
    cv: CVConfig = Field(default_factory=CVConfig)
    stop_sick_trials: bool = True
    # Sampler and pruner knobs; ``None`` means "chosen from the budget" (docs/tune.md).
    startup_trials: int | None = Field(None, ge=0)
    # Epochs before any pruning (the first ASHA rung); None: a tenth of train.epochs, at least 1.
    warmup_epochs: int | None = Field(None, ge=0)
    percentile: float = Field(25.0, gt=0, lt=100)
    # 3: two pruning rungs in a 20-epoch trial (2 and 6), one trial in 9 to the end (docs/tune.md).
    reduction_factor: int = Field(3, ge=2)
    # Each trial trains from seed + its number (else all from seed); docs/tune.md.
    seed_per_trial: bool = True
    # Crash safety: a trial whose process stopped sending heartbeats is failed and retried.
    heartbeat_interval: int = Field(10, ge=0)
    grace_period: int | None = Field(None, gt=0)
    max_retries: int = Field(2, ge=0)
    max_consecutive_failures: int = Field(5, ge=1)
    progress: Literal["auto", "rich", "plain", "none"] = "auto"

    @field_validator("timeout", mode="before")
    @classmethod
    def _no_boolean_duration(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
            raise ValueError(
                f"expected a duration like 90s, 10m or 1.5h (or seconds), got {value!r}"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is None:
            return value
        from ._duration import parse_duration

        if parse_duration(value) <= 0:
            raise ValueError("expected a positive duration like 90s, 10m or 1.5h")
        return value

    @field_validator("objectives")
    @classmethod
    def _distinct_objectives(
        cls, value: list[ObjectiveConfig] | None
    ) -> list[ObjectiveConfig] | None:
        if value is not None:
            if not value:
                raise ValueError("tune.objectives needs at least one {metric, direction} entry")
            names = [o.metric for o in value]
            if len(set(names)) != len(names):
                raise ValueError(f"tune.objectives names a metric twice: {names}")
        return value

    @field_validator("population")
    @classmethod
    def _population_size(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 2:
            raise ValueError(f"tune.population must be auto or at least 2, got {value}")
        return value

    @model_validator(mode="after")
    def _one_way_to_run(self) -> TuneConfig:
        if self.backend == "ray" and self.workers > 1:
            raise ValueError(
                "tune.workers > 1 runs helper processes on this machine; with tune.backend: ray "
                "the cluster runs the trials (set tune.max_concurrent instead)"
            )
        if self.backend == "ray" and self.executor == "population":
            raise ValueError("tune.executor: population runs on the local backend only")
        if self.pbt is not None and self.executor != "population":
            raise ValueError("tune.pbt (population-based training) needs tune.executor: population")
        if self.pbt is not None and self.objectives and len(self.objectives) > 1:
            raise ValueError("tune.pbt ranks members by one metric; it cannot run multi-objective")
        return self

    @model_validator(mode="after")
    def _cmaes_is_single_objective(self) -> TuneConfig:
        if self.sampler == "cmaes" and self.objectives and len(self.objectives) > 1:
            raise ValueError(
                "sampler 'cmaes' optimises one objective; use nsga2, tpe, gp or random "
                "for tune.objectives"
            )
        return self
