"""Shared fixtures of the tune tests: one torch thread, and a scratch working directory."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside ``tmp_path`` (run directories land under ``tmp_path/runs``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
