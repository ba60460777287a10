"""Fixtures of the doctor's tests: one CPU thread for the whole package, a fixed seed per test.

Package scope, so the module-scoped runs (the repair zoo) are single-threaded too: on a shared
machine extra OpenMP threads only spin.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
