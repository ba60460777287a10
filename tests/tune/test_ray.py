"""The Ray backend on a real two-node cluster on 127.0.0.1 (no mocks).

The cluster is Ray's own test cluster (``ray.cluster_utils.Cluster``): a head node and one
worker node with one CPU each, started here and shut down in a ``finally`` (which stops only
the processes it started). Select these tests with ``-m ray``.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

ray = pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

import tunelab  # noqa: E402
from tunelab.config import parse_config  # noqa: E402
from tunelab.tune._config_study import prepare_run_dir  # noqa: E402
from tunelab.tune._ray import run_ray_study  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(240)]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # Ray's worker processes must import this checkout's tunelab, not another install.
    src = str(Path(tunelab.__file__).resolve().parents[1])
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, previous) if p)
    started = None
    try:
        started = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        worker = started.add_node(num_cpus=1)
        started.wait_for_nodes()
        assert started.address.startswith("127.0.0.1"), started.address
        yield started, worker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if started is not None:
            started.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def digits_config(root: Path, name: str, trials: int) -> dict:
    """A small digits study: a tiny MLP, 4 epochs, ASHA (r=2) so some trials are pruned."""
    return {
        "name": name,
        "seed": 0,
        "run_root": str(root / "runs"),
        "data": {"source": "sklearn", "dataset": "digits", "scale": "standard"},
        "model": {"builder": "mlp", "params": {"depth": 1, "width": 16}},
        "train": {
            "epochs": 4,
            "batch_size": 64,
            "lr": {"low": 1e-4, "high": 3e-1, "log": True},
            "early_stopping": {"enabled": False},
            "progress": "none",
        },
        "tune": {
            "trials": trials,
            "sampler": "random",
            "pruner": "asha",
            "reduction_factor": 2,
            "progress": "none",
            "heartbeat_interval": 0,
        },
    }


def open_trials(run_dir: Path, name: str) -> list:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'study.db'}")
    return study.get_trials(deepcopy=False)


def node_of(trial) -> str:
    return trial.user_attrs["node"]["node_id"]


def test_study_runs_on_both_nodes_and_prunes(cluster, tmp_path):
    head_cluster, _worker = cluster
    cfg = parse_config(digits_config(tmp_path, "digits_ray", trials=6))
    run_dir = prepare_run_dir(cfg)
    reason = run_ray_study(cfg, None, run_dir, address=head_cluster.address)
    assert reason == "trial budget of 6 reached"
    trials = open_trials(run_dir, cfg.name)
    assert len(trials) == 6 and all(t.state in FINISHED for t in trials)
    assert {t.number for t in trials} == set(range(6))
    assert len({node_of(t) for t in trials}) == 2, "trials ran on one node only"
    assert any(t.state == TrialState.PRUNED for t in trials), "nothing was pruned"
    assert all(t.user_attrs["node"]["ip"] == "127.0.0.1" for t in trials)
    for t in trials:
        trial_dir = run_dir / "trials" / str(t.number)
        assert (trial_dir / "metrics.jsonl").is_file()
        assert t.intermediate_values, "per-epoch values reach the study"
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert (run_dir / "trials" / str(best.number) / "best" / "model.safetensors").is_file()


def test_losing_the_worker_node_loses_no_finished_trial(cluster, tmp_path):
    head_cluster, worker = cluster
    cfg = parse_config(digits_config(tmp_path, "digits_ray_fault", trials=6))
    run_dir = prepare_run_dir(cfg)
    worker_id = worker.node_id
    seen: dict = {}

    def remove_worker_after_its_first_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run_dir / "ray").exists():
            time.sleep(0.2)  # the driver creates the study's tables first; opening races it
        while time.monotonic() < deadline:
            try:
                trials = open_trials(run_dir, cfg.name)
            except Exception:
                trials = []
            mine = [t for t in trials if t.state in FINISHED and node_of(t) == worker_id]
            if mine:
                seen.update({t.number: (t.state, t.value) for t in trials if t.state in FINISHED})
                head_cluster.remove_node(worker)
                seen["removed"] = True
                return
            time.sleep(0.2)

    remover = threading.Thread(target=remove_worker_after_its_first_trial, daemon=True)
    remover.start()
    reason = run_ray_study(cfg, None, run_dir, address=head_cluster.address)
    remover.join(timeout=30)
    assert seen.get("removed"), "the worker node never finished a trial"
    assert reason == "trial budget of 6 reached"
    trials = open_trials(run_dir, cfg.name)
    finished = [t for t in trials if t.state in FINISHED]
    # The trial that ran on the lost node is run again on the head node, as the same Optuna
    # trial: by Ray's retry, or by the searcher when Ray gives it up (two calls of its actor
    # failing at once make Ray give up a trial it had just re-queued, in about 2 runs in 5).
    assert len(finished) == 6 == len(trials), [(t.number, t.state) for t in trials]
    for number, (state, value) in ((k, v) for k, v in seen.items() if k != "removed"):
        kept = next(t for t in trials if t.number == number)
        assert (kept.state, kept.value) == (state, value), "a finished trial changed"
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == len(params), "a finished trial was run again"
    assert all((run_dir / "trials" / str(t.number) / "metrics.jsonl").is_file() for t in finished)

    # A driver killed mid-study left a RUNNING trial: the same call continues the study,
    # fails and re-runs that trial, and redoes nothing that finished.
    study = optuna.load_study(study_name=cfg.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    orphan = study.ask()
    more = parse_config(digits_config(tmp_path, "digits_ray_fault", trials=7))
    assert (
        run_ray_study(more, None, run_dir, address=head_cluster.address)
        == "trial budget of 7 reached"
    )
    after = open_trials(run_dir, cfg.name)
    assert next(t for t in after if t.number == orphan.number).state == TrialState.FAIL
    assert len([t for t in after if t.state in FINISHED]) == 7
    assert {t.number for t in finished} <= {t.number for t in after if t.state in FINISHED}


def test_trial_errors_fail_the_trial_and_fatal_errors_stop_the_study(cluster, tmp_path):
    from tunelab.errors import FatalError
    from tunelab.tune._budget import Budget
    from tunelab.tune._engine import open_study
    from tunelab.tune._ray import RayExecutor
    from tunelab.tune._storage import open_storage

    head_cluster, _worker = cluster

    class Objective:  # defined here, so Ray ships it by value
        distributions: ClassVar[dict] = {"x": optuna.distributions.FloatDistribution(-1.0, 1.0)}

        def __init__(self, fatal_at: int | None) -> None:
            self.fatal_at = fatal_at

        def __call__(self, trial):
            x = trial.suggest_float("x", -1.0, 1.0)
            if trial.number == self.fatal_at:
                raise FatalError("error: data/digits.csv vanished")
            if trial.number == 1:
                raise ValueError("a bad corner of the space")
            return x * x

    def study(name: str):
        storage = open_storage(f"sqlite:///{tmp_path / 'errors.db'}", heartbeat_interval=0)
        return open_study(
            storage,
            study_name=name,
            directions=["minimize"],
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna.pruners.NopPruner(),
        )

    ray.init(address=head_cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        ok = study("trial_error")
        executor = RayExecutor(max_concurrent=1)
        executor.run(ok, Objective(fatal_at=None), Budget(trials=4), None)
        states = {t.number: t.state for t in ok.get_trials(deepcopy=False)}
        assert len(states) == 4 and states[1] == TrialState.FAIL, states
        assert ok.trials[1].user_attrs["error"] == "ValueError: a bad corner of the space"
        assert sum(s == TrialState.COMPLETE for s in states.values()) == 3

        fatal = study("fatal_error")
        with pytest.raises(FatalError, match="vanished"):
            RayExecutor(max_concurrent=1).run(fatal, Objective(fatal_at=2), Budget(trials=6), None)
        trials = fatal.get_trials(deepcopy=False)
        assert trials[2].state == TrialState.FAIL and "vanished" in trials[2].user_attrs["error"]
        assert len(trials) == 3, "no trial starts after the fatal one"
    finally:
        ray.shutdown()


def test_a_trial_whose_worker_dies_runs_again_as_the_same_optuna_trial(cluster, tmp_path):
    """Ray gives a trial up (here ``max_failures=0``); the searcher runs it again itself."""
    from tunelab.tune._budget import Budget
    from tunelab.tune._engine import open_study
    from tunelab.tune._ray import RayExecutor
    from tunelab.tune._storage import open_storage

    head_cluster, _worker = cluster

    class Crashing:  # defined here, so Ray ships it by value
        distributions: ClassVar[dict] = {"x": optuna.distributions.FloatDistribution(-1.0, 1.0)}

        def __init__(self, marks: str) -> None:
            self.marks = marks

        def __call__(self, trial):
            x = trial.suggest_float("x", -1.0, 1.0)
            mark = (
                Path(self.marks)
                / f"{trial.number}-{len(list(Path(self.marks).glob(f'{trial.number}-*')))}"
            )
            mark.touch()
            if trial.number == 1 or (trial.number == 2 and mark.name == "2-0"):
                os._exit(3)  # the worker process dies, as with a lost node or a segfault
            return x * x

    marks = tmp_path / "marks"
    marks.mkdir()
    storage = open_storage(f"sqlite:///{tmp_path / 'crash.db'}", heartbeat_interval=0)
    study = open_study(
        storage,
        study_name="crash",
        directions=["minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    ray.init(address=head_cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(max_concurrent=1, max_failures=0, max_retries=1, probe=False)
        executor.run(study, Crashing(str(marks)), Budget(trials=4), None)
    finally:
        ray.shutdown()
    trials = study.get_trials(deepcopy=False)
    states = {t.number: t.state for t in trials}
    # Trial 2 died once and ran again under the same number; trial 1 died on every try and
    # is failed after max_retries re-runs; the budget still ends with 4 trials.
    assert len(trials) == 4 and states[2] == TrialState.COMPLETE, states
    assert states[1] == TrialState.FAIL and "worker died" in trials[1].user_attrs["error"]
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 3
    assert sorted(m.name for m in marks.iterdir() if m.name[0] in "12") == [
        "1-0",
        "1-1",
        "2-0",
        "2-1",
    ]


def test_the_cli_tunes_on_the_cluster_and_the_report_renders_it(cluster, tmp_path):
    import subprocess
    import sys

    import yaml

    head_cluster, _worker = cluster
    if len(head_cluster.list_all_nodes()) < 2:  # the fault test removed the worker node
        head_cluster.add_node(num_cpus=1)
        head_cluster.wait_for_nodes()
    config = tmp_path / "digits_ray_cli.yaml"
    config.write_text(yaml.safe_dump(digits_config(tmp_path, "digits_ray_cli", trials=6)))
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    tune = [sys.executable, "-m", "tunelab.cli", "tune", str(config), "--backend", "ray"]
    done = subprocess.run(
        [*tune, "--address", head_cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "runs" / "digits_ray_cli"
    trials = open_trials(run_dir, "digits_ray_cli")
    assert len(trials) == 6 and all(t.state in FINISHED for t in trials)
    assert len({node_of(t) for t in trials}) == 2, "trials ran on one node only"
    assert any(t.state == TrialState.PRUNED for t in trials)
    assert (run_dir / "best" / "config.yaml").is_file()
    report = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "report", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    html = (run_dir / "report.html").read_text()
    assert "digits_ray_cli" in html and "trial" in html.lower()
