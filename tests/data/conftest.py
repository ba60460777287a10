"""Fixtures for the data stage tests (helpers live in ``data_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .data_helpers import table_frame


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    table_frame().to_csv(path, index=False)
    return path
