"""``ModelSpec``: everything needed to rebuild a model's architecture, as JSON.

A spec plus a safetensors file is a complete model: ``spec.build()`` makes the architecture,
the weights fill it. Nothing about the model is ever pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch.nn as nn

from ..errors import ConfigError


@dataclass
class ModelSpec:
    """A model's builder, its parameters and the data shape it was built for.

    Example:
        >>> from tunelab.models import ModelSpec
        >>> spec = ModelSpec("mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=3)
        >>> ModelSpec.from_json(spec.to_json()) == spec
        True
        >>> spec.build().head.out_features
        3
    """

    builder: str
    params: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    output_size: int = 1
    init: str = "default"
    task: str = "classification"
    classes: list[str] = field(default_factory=list)
    pretrained_from: str | None = None
    # Regression: per-output ``[offsets, scales]`` (the training targets' mean and std) that a
    # built-in model's head output is mapped through (see ``HeadedModel.set_output_scale``).
    target_scale: list[list[float]] | None = None

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(d) for d in self.input_shape)
        self.output_size = int(self.output_size)
        self.classes = [str(c) for c in self.classes]
        if self.target_scale is not None:
            self.target_scale = [[float(v) for v in row] for row in self.target_scale]

    def build(self) -> nn.Module:
        """A freshly initialised model of this architecture (weights are not loaded)."""
        from ._base import HeadedModel
        from ._registry import build_model

        model = build_model(
            self.builder,
            self.params,
            input_shape=self.input_shape,
            output_size=self.output_size,
            init=self.init,
        )
        if self.target_scale is not None and isinstance(model, HeadedModel):
            model.set_output_scale(*self.target_scale)
        return model

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Read a spec; extra keys (``metrics``, ``parameters`` in model.json) are ignored."""
        if isinstance(data.get("spec"), dict):
            data = data["spec"]
        if not isinstance(data, dict) or "builder" not in data:
            raise ConfigError("model.json holds no model spec (no 'builder' key)")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.json holds an invalid model spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> ModelSpec:
        """Parse :meth:`to_json` output (a dict is accepted too)."""
        if isinstance(text, dict):
            return cls.from_dict(text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model.json is not valid JSON: {exc}") from None
        return cls.from_dict(data)
