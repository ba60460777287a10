"""What running trials on Ray costs: orchestration per trial, and trials/hour on 1 vs 2 nodes.

1. Per-trial orchestration cost of a no-op objective (``x**2``), SQLite study storage, random
   sampler, two trials at a time: tunelab local (``tune_objective``, the optuna loop),
   plain Ray Tune with ``OptunaSearch``, and tunelab's Ray executor (``RayExecutor``).
   Both Ray rows share one local Ray instance (2 CPUs, started once, not timed) and reuse actors.
2. Trials per hour of a small digits study (tiny MLP, a few epochs, no pruning) through
   ``run_ray_study`` on a ``ray.cluster_utils.Cluster`` of one node, then two nodes, 1 CPU each:
   end to end (the study's start-up included), and in steady state (from the study's own
   completion times, after the first wave of trials, which pays the actors' start-up).

Everything binds 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), no dashboard, no usage
stats. Run from the repository root:

    PYTHONPATH=src python bench/ray_overhead.py [--trials 40] [--digits-trials 8] [--epochs 6]
    PYTHONPATH=src python bench/ray_overhead.py --trials 60 --repeats 7 --skip-digits
    PYTHONPATH=src python bench/ray_overhead.py --skip-noop --digits-trials 24 --epochs 60 \\
        --node-repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
sys.path.insert(0, SRC)

import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)


class NoOp:
    """``objective(trial)`` for the tunelab Ray executor: one suggested float, squared."""

    distributions: ClassVar[dict] = {"x": optuna.distributions.FloatDistribution(-10.0, 10.0)}

    def __call__(self, trial):
        return trial.suggest_float("x", -10.0, 10.0) ** 2


def plain_trainable(config):
    from ray import tune

    tune.report({"loss": config["x"] ** 2})


def tunelab_local(n: int, folder: Path) -> float:
    from tunelab.tune import tune_objective

    start = time.perf_counter()
    tune_objective(
        lambda trial, p: p["x"] ** 2,
        space={"x": {"low": -10.0, "high": 10.0}},
        trials=n,
        sampler="random",
        storage=f"sqlite:///{folder / 'local.db'}",
        heartbeat_interval=0,
    )
    return (time.perf_counter() - start) / n


def plain_ray(n: int, folder: Path) -> float:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from tunelab.tune._storage import open_storage

    storage = open_storage(f"sqlite:///{folder / 'plain.db'}", heartbeat_interval=0)
    search = OptunaSearch(
        NoOp.distributions,
        metric="loss",
        mode="min",
        sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="plain",
        storage=storage,
    )
    tuner = tune.Tuner(
        tune.with_resources(plain_trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=2),
            num_samples=n,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=str(folder / "ray"), name="plain", verbose=0, log_to_file=False
        ),
    )
    start = time.perf_counter()
    tuner.fit()
    return (time.perf_counter() - start) / n


def tunelab_ray(n: int, folder: Path) -> float:
    from tunelab.tune._budget import Budget
    from tunelab.tune._engine import open_study
    from tunelab.tune._ray import RayExecutor
    from tunelab.tune._storage import open_storage

    storage = open_storage(f"sqlite:///{folder / 'tunelab_ray.db'}", heartbeat_interval=0)
    study = open_study(
        storage,
        study_name="tunelab_ray",
        directions=["minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    start = time.perf_counter()
    RayExecutor(max_concurrent=2).run(study, NoOp(), Budget(trials=n), None)
    return (time.perf_counter() - start) / n


def steady_rate(run_dir: Path, first_wave: int) -> float:
    """Trials per hour once the first wave has finished (actor start-up, imports and the first
    fetch of the data are in that wave): trials completed after the ``first_wave``-th one,
    over the time from its completion to the last one's, from the study's own timestamps."""
    storage = f"sqlite:///{run_dir / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)
    ends = sorted(
        t.datetime_complete
        for t in optuna.load_study(study_name=name, storage=storage).trials
        if t.datetime_complete is not None
    )
    span = (ends[-1] - ends[first_wave - 1]).total_seconds()
    return (len(ends) - first_wave) / span * 3600


def digits_rate(nodes: int, trials: int, folder: Path, epochs: int = 6) -> tuple[float, float]:
    """Trials per hour on ``nodes`` one-CPU nodes: end to end, and in steady state."""
    import ray
    from ray.cluster_utils import Cluster

    from tunelab.config import parse_config
    from tunelab.tune._config_study import prepare_run_dir
    from tunelab.tune._ray import run_ray_study

    cfg = parse_config(
        {
            "name": f"digits_{nodes}n",
            "seed": 0,
            "run_root": str(folder / "runs"),
            "data": {"source": "sklearn", "dataset": "digits", "scale": "standard"},
            "model": {"builder": "mlp", "params": {"depth": 1, "width": 32}},
            "train": {
                "epochs": epochs,
                "batch_size": 64,
                "lr": {"low": 1e-3, "high": 1e-1, "log": True},
                "early_stopping": {"enabled": False},
                "progress": "none",
            },
            "tune": {"trials": trials, "sampler": "random", "pruner": "none", "progress": "none"},
        }
    )
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        assert cluster.address.startswith("127.0.0.1"), cluster.address
        run_dir = prepare_run_dir(cfg)
        start = time.perf_counter()
        run_ray_study(cfg, None, run_dir, address=cluster.address)
        end_to_end = trials / (time.perf_counter() - start) * 3600
        return end_to_end, steady_rate(run_dir, first_wave=nodes)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def noop_rows(rows: dict[str, float], trials: int, folder: Path, repeats: int = 1) -> None:
    """The no-op rows; with ``repeats`` > 1 plain and tunelab alternate, medians reported."""
    import logging
    import statistics

    import ray

    rows["noop_ms_tunelab_local"] = 1e3 * tunelab_local(trials, folder)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    plain, ours = [], []
    try:
        # The driver's first Tuner pays its imports; not timed. Each timed Tuner starts new
        # trial actors, so both arms pay their workers' imports inside the figure.
        plain_ray(4, folder / "warm")
        for i in range(repeats):
            arms = [("plain", plain_ray, plain), ("tunelab", tunelab_ray, ours)]
            for name, run, out in arms if i % 2 == 0 else arms[::-1]:
                out.append(1e3 * run(trials, folder / f"{name}{i}"))
    finally:
        ray.shutdown()
    rows["noop_ms_plain_ray_optunasearch"] = statistics.median(plain)
    rows["noop_ms_tunelab_ray"] = statistics.median(ours)
    ratios = [b / a for a, b in zip(plain, ours, strict=True)]
    rows["tunelab_ray_over_plain"] = statistics.median(ratios)
    if repeats > 1:
        rows["tunelab_ray_over_plain_min"] = min(ratios)
        rows["tunelab_ray_over_plain_max"] = max(ratios)


def node_rows(rows: dict[str, float], trials: int, folder: Path, epochs: int, repeats: int) -> None:
    """1 vs 2 nodes, alternating which goes first; medians, and the per-pair ratios' range."""
    import statistics

    rates: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for i in range(repeats):
        for nodes in (1, 2) if i % 2 == 0 else (2, 1):
            rates[nodes].append(digits_rate(nodes, trials, folder / f"n{nodes}r{i}", epochs))
    for j, kind in enumerate(("digits", "steady")):
        one = [r[j] for r in rates[1]]
        two = [r[j] for r in rates[2]]
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        rows[f"{kind}_trials_per_hour_1_node"] = statistics.median(one)
        rows[f"{kind}_trials_per_hour_2_nodes"] = statistics.median(two)
        rows[f"{kind}_two_nodes_over_one"] = statistics.median(ratios)
        if repeats > 1:
            rows[f"{kind}_two_nodes_over_one_min"] = min(ratios)
            rows[f"{kind}_two_nodes_over_one_max"] = max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="no-op trials per row")
    parser.add_argument("--digits-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per digits trial")
    parser.add_argument("--skip-noop", action="store_true", help="only the 1 vs 2 nodes rows")
    parser.add_argument("--skip-digits", action="store_true", help="only the no-op rows")
    parser.add_argument(
        "--node-repeats", type=int, default=1, help="1-node and 2-node runs each, alternating"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="no-op runs per arm, plain and tunelab alternating"
    )
    args = parser.parse_args()
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_noop:
            noop_rows(rows, args.trials, folder, args.repeats)
        if not args.skip_digits:
            node_rows(rows, args.digits_trials, folder, args.epochs, args.node_repeats)
    print(json.dumps({k: round(v, 3) for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
