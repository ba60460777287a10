"""Per-trial overhead of tunelab's engine over bare Optuna, on a no-op objective.

200 trials of ``objective(trial) = x**2`` (one suggested float) through

- bare Optuna: ``optuna.create_study(...).optimize(objective, n_trials=200)``;
- tunelab: ``tunelab.tune.tune_objective(objective, ...)`` -- budget check per trial, worker
  record, failure capture, heartbeat (SQLite), summary with importances at the end;

each with the same sampler, in memory and in SQLite (a fresh file per run). Runs alternate
(bare, tunelab, bare, tunelab, ...) so machine load hits both alike; the median of the repeats
is reported. Ray Tune is measured too when it is installed.

    python bench/trial_overhead.py [--trials 200] [--repeats 3] [--sampler random]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from tunelab.tune import tune_objective


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


def sampler_of(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def bare(storage: str, trials: int, sampler: str) -> float:
    start = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=sampler_of(sampler, 0))
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def tunelab(storage: str, trials: int, sampler: str) -> float:
    start = time.perf_counter()
    tune_objective(objective, trials=trials, sampler=sampler_of(sampler, 0), storage=storage)
    return time.perf_counter() - start


def ray_tune(trials: int) -> float | None:
    try:
        from ray import tune as ray_tune_mod
    except ImportError:
        return None
    start = time.perf_counter()
    tuner = ray_tune_mod.Tuner(
        lambda config: {"loss": config["x"] ** 2},
        param_space={"x": ray_tune_mod.uniform(-10, 10)},
        tune_config=ray_tune_mod.TuneConfig(num_samples=trials, metric="loss", mode="min"),
    )
    tuner.fit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sampler", choices=("random", "tpe"), default="random")
    parser.add_argument("--json", type=Path, default=None, help="Also write results here.")
    args = parser.parse_args()
    optuna.logging.set_verbosity(logging.ERROR)
    times: dict[str, list[float]] = {k: [] for k in ("bare_mem", "tl_mem", "bare_db", "tl_db")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            times["bare_mem"].append(bare(None, args.trials, args.sampler))
            times["tl_mem"].append(tunelab("memory", args.trials, args.sampler))
            times["bare_db"].append(bare(f"sqlite:///{tmp}/bare{r}.db", args.trials, args.sampler))
            times["tl_db"].append(tunelab(f"sqlite:///{tmp}/tl{r}.db", args.trials, args.sampler))
    per_trial = {k: statistics.median(v) / args.trials * 1000 for k, v in times.items()}
    ray = ray_tune(args.trials)
    rows = [
        ("in memory", per_trial["bare_mem"], per_trial["tl_mem"]),
        ("SQLite", per_trial["bare_db"], per_trial["tl_db"]),
    ]
    print(f"{args.trials} no-op trials, {args.sampler} sampler, median of {args.repeats} runs")
    print(f"{'storage':<10} {'Optuna ms/trial':>16} {'tunelab ms/trial':>17} {'added ms':>9}")
    for name, b, t in rows:
        print(f"{name:<10} {b:>16.2f} {t:>17.2f} {t - b:>9.2f}")
    if ray is None:
        print("Ray Tune: not installed (pip install 'tunelab[ray]')")
    else:
        print(f"Ray Tune: {ray / args.trials * 1000:.2f} ms/trial")
    added = per_trial["tl_db"] - per_trial["bare_db"]
    print(
        f"goal: tunelab adds <= 50 ms/trial over Optuna+SQLite: {added:.2f} ms -> "
        f"{'met' if added <= 50 else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps({"ms_per_trial": per_trial, "ray_s": ray}, indent=2))


if __name__ == "__main__":
    main()
