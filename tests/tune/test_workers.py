"""tune.workers: N processes share one storage, each with cores // N torch threads."""

from __future__ import annotations

from tunelab.tune import run_study
from tunelab.tune._workers import threads_per_worker

from .conftest import WORKER_LRS, tiny_config, worker_study_sections


def test_two_workers_share_the_study_and_split_the_cores(tmp_path):
    result = run_study(tiny_config(tmp_path, name="par", **worker_study_sections()), workers=2)
    # Same kind of result as one worker: every grid point once, nothing repeated. (A high lr
    # may diverge late in its 300 epochs and be pruned as sick; it still ran exactly once.)
    assert {t.state for t in result.trials} <= {"complete", "pruned"}
    assert sorted(t.params["train.lr"] for t in result.trials) == WORKER_LRS
    assert len(result.trials) == 8, "no trial started beyond the budget"
    workers = [t.user_attrs["worker"] for t in result.trials]
    assert {w["threads"] for w in workers} == {threads_per_worker(2)}
    assert len({w["pid"] for w in workers}) == 2, "both worker processes ran trials"
    assert (tmp_path / "runs" / "par" / "best" / "model.safetensors").is_file()
    for number in range(8):
        assert (tmp_path / "runs" / "par" / "trials" / str(number) / "result.json").is_file()
