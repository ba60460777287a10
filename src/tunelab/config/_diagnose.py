"""The ``diagnose`` section: the training doctor attached to the trainer."""

from __future__ import annotations

from pydantic import Field

from ._base import Section


class DiagnoseConfig(Section):
    """The training doctor attached to the trainer."""

    enabled: bool = False
    every_n_steps: int = Field(10, ge=1)
    stop_on_error: bool = True
