"""The strict base model every config section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated.

    Types are strict: no boolean or string where a number belongs (``epochs: true`` and
    ``epochs: "10"`` are errors, not 1 and 10), no number where a string or a boolean belongs,
    and no ``nan``/``inf`` in a float field. A YAML ``1e-4`` is a float (the config reader
    resolves YAML 1.2 floats), and an integer is accepted where a float is expected.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        strict=True,
        allow_inf_nan=False,
    )
