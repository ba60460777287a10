"""Fixtures for the data stage tests (helpers live in ``data_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .data_helpers import table_frame


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    table_frame().to_csv(path, index=False)
    return path
