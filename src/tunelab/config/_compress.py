"""The ``compress`` and ``deploy`` sections: compression methods, export and the server."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import Section
from ._registry import allowed_names


class CompressConfig(Section):
    """Compression methods applied to the best model, in order."""

    methods: list[str] = Field(default_factory=lambda: ["prune", "quantize"])
    sparsity: float = Field(0.5, gt=0, lt=1)
    structured: bool = True
    prune_steps: int = Field(1, ge=1)
    finetune_epochs: int = Field(3, ge=0)
    finetune_lr: float | None = Field(None, gt=0)
    quantize_backend: Literal["onnxruntime"] = "onnxruntime"
    quantize_mode: Literal["auto", "dynamic", "static"] = "auto"
    calibration_batches: int = Field(8, gt=0)
    student_width_mult: float = Field(0.5, gt=0, le=1)
    student_builder: str | None = None
    student_params: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1)
    distill_epochs: int | None = Field(None, gt=0)
    latency_threads: int = Field(1, ge=1)
    latency_repeats: int = Field(100, ge=5)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        names = allowed_names("compress.methods")
        for method in value:
            if method not in names:
                raise ValueError(f"unknown method {method!r}; expected one of {', '.join(names)}")
        return value


class DeployConfig(Section):
    """Export formats and the prediction server."""

    formats: list[Literal["onnx", "torchscript"]] = Field(default_factory=lambda: ["onnx"])
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    model: Literal["best", "onnx", "int8"] = "best"
    max_rows: int = Field(1024, gt=0)
    max_body_bytes: int = Field(10_000_000, gt=0)
    threads: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _formats_unique(self) -> DeployConfig:
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"deploy.formats has duplicates: {self.formats}")
        return self
