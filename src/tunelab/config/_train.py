"""The ``train`` section: optimiser, schedule, regularisation, precision, stopping, logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import Section
from ._space import Tunable


class ScheduleConfig(Section):
    """Learning-rate schedule with optional linear warm-up (in epochs)."""

    name: Tunable[Literal["none", "step", "exponential", "cosine", "onecycle", "plateau"]] = "none"
    warmup_epochs: Tunable[int] = Field(0, ge=0)
    step_size: Tunable[int] = Field(10, gt=0)
    gamma: Tunable[float] = Field(0.1, gt=0, le=1)
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(3, ge=0)
    min_lr: float = Field(0.0, ge=0)
    max_lr_mult: float = Field(10.0, gt=0)


class EarlyStoppingConfig(Section):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    enabled: bool = True
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(Section):
    """How a model is trained."""

    epochs: Tunable[int] = Field(20, gt=0)
    batch_size: Tunable[int] = Field(64, gt=0)
    optimizer: Tunable[Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"]] = "adam"
    fused_optimizer: bool = True
    lr: Tunable[float] = Field(1e-3, gt=0)
    momentum: Tunable[float] = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: Tunable[float] = Field(0.0, ge=0)
    l1: Tunable[float] = Field(0.0, ge=0)
    loss: Literal["auto", "cross_entropy", "bce", "mse", "mae", "huber"] = "auto"
    label_smoothing: Tunable[float] = Field(0.0, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "none"
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    clip_grad_norm: Tunable[float] | None = Field(None, gt=0)
    clip_grad_value: float | None = Field(None, gt=0)
    accumulate_steps: Tunable[int] = Field(1, ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    monitor: str = "val_loss"
    checkpoint_best_only: bool = True
    deterministic: bool = True
    tensorboard: bool = True
    progress: Literal["auto", "rich", "plain", "none"] = "auto"
    grad_histograms_every: int = Field(1, ge=0)
    eval_batch_size: int | None = Field(None, gt=0)
    restore_best: bool = True
    checkpoint_interval_s: float = Field(10.0, ge=0)
    threads: int | None = Field(None, gt=0)

    @field_validator("betas", mode="before")
    @classmethod
    def _betas_from_a_list(cls, value: object) -> object:
        # YAML and JSON have lists, not tuples; the two numbers are still checked strictly.
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_clipping_mode(self) -> TrainConfig:
        if self.clip_grad_norm is not None and self.clip_grad_value is not None:
            raise ValueError("set train.clip_grad_norm or train.clip_grad_value, not both")
        return self
