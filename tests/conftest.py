"""Fixtures every test package shares.

Each test runs on one torch thread (the suite runs on a 2-core machine, and torch's default thread
count on a loaded machine makes small models many times slower) and from a fixed torch seed, so a
test's numbers do not depend on the tests that ran before it.
"""

from __future__ import annotations

import os

# Every Ray process a test starts binds 127.0.0.1 only, and sends no usage statistics.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
