"""The Ray trainable fetches the study's objective once per worker process, not per trial."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest

ray = pytest.importorskip("ray")

from tunelab.tune import _ray_trial  # noqa: E402


class Ref:
    """Stands in for an ``ObjectRef``: only ``hex()`` is used before ``ray.get``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def hex(self) -> str:
        return self.key


def test_the_objective_is_fetched_once_per_process_and_again_for_a_new_study(monkeypatch):
    fetched: list[str] = []

    def get(ref):
        fetched.append(ref.key)
        return f"objective of {ref.key}"

    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(_ray_trial, "_fetched", None)
    first, second = Ref("study-a"), Ref("study-b")
    assert [_ray_trial.fetch_objective(first) for _ in range(3)] == ["objective of study-a"] * 3
    assert _ray_trial.fetch_objective(second) == "objective of study-b"
    assert fetched == ["study-a", "study-b"]
