"""The ``tune`` section: samplers, pruners, budget, CV, objectives, workers, storage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ._base import Section


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


class ObjectiveConfig(Section):
    """One objective of a (multi-objective) study."""

    metric: str
    direction: Literal["maximize", "minimize"]


class TuneConfig(Section):
    """The hyperparameter search."""

    trials: int = Field(20, gt=0)
    timeout: str | None = None
    max_total_epochs: int | None = Field(None, gt=0)
    sampler: Literal["auto", "grid", "random", "tpe", "gp", "cmaes", "qmc", "nsga2"] = "auto"
    pruner: Literal["none", "median", "percentile", "asha", "hyperband"] = "asha"
    metric: str = "val_loss"
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    objectives: list[ObjectiveConfig] | None = None
    workers: int = Field(1, ge=1)
    storage: str | None = None
    cv: CVConfig = Field(default_factory=CVConfig)
    stop_sick_trials: bool = True

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from ._duration import parse_duration

        parse_duration(value)
        return value
