"""What a source hands to cleaning: raw tables or raw images, plus one-line error helpers.

Sources only read; they do not clean. Keeping the loaded data in these two small containers lets
cleaning, splitting and the fitted preprocessing work the same way for every file format, and
lets error messages name the file, the column and the row the user has to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from ..errors import DataError

TaskHint = Literal["classification", "regression"] | None


@dataclass
class Loaded:
    """Common part of what a source read; ``kind`` names the ``Preparer`` that cleans it.

    ``origin`` names the file (or ``sklearn:digits``) in messages; ``line_offset`` turns a
    0-based data row into the file's line number (2 for a CSV with a header), ``None`` where
    lines mean nothing (Parquet, arrays).
    """

    origin: str
    label_name: str = "label"
    classes: list[str] | None = None
    task: TaskHint = None
    line_offset: int | None = None
    notes: list[str] = field(default_factory=list)
    ignored: int = 0

    kind: ClassVar[str] = ""


@dataclass
class RawTable(Loaded):
    """Feature columns as read (index = 0-based source row) and the raw label column."""

    kind: ClassVar[str] = "table"

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    labels: pd.Series | np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class RawImages(Loaded):
    """Images ``(n, C, H, W)`` (uint8 or float) and integer labels; ``items`` names each one."""

    kind: ClassVar[str] = "image"

    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 1), np.uint8))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    items: list[str] | None = None
    mode: str | None = None
    resize_to: tuple[int, int] | None = None


def where(
    origin: str,
    *,
    column: str | None = None,
    row: int | None = None,
    line_offset: int | None = None,
    item: str | None = None,
) -> str:
    """``file.csv: column 'age' row 17 (line 18)`` — the place a message points at.

    ``row`` is the 0-based source row; users see it 1-based.
    """
    parts = [origin]
    if column is not None:
        parts.append(f"column {column!r}")
    if item is not None:
        parts.append(item)
    elif row is not None:
        text = f"row {int(row) + 1}"
        if line_offset is not None:
            text += f" (line {int(row) + line_offset})"
        parts.append(text)
    return " ".join(parts[:1]) + (": " + " ".join(parts[1:]) if len(parts) > 1 else "")


def data_error(place: str, message: str) -> DataError:
    """A one-line :class:`DataError`; line breaks in values (``\\n``, ``\\r``, ...) never
    break the line."""
    text = f"data error: {place}: {message}"
    return DataError(" ".join(text.splitlines()))


def short(value: object, limit: int = 40) -> str:
    """A value as a message shows it: repr, cut to ``limit`` characters."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
