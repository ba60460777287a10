"""Wall time to the search-efficiency targets: the population executor vs the sequential default.

Issue 14's figure "wall time to reach the search-efficiency tasks' targets, population vs
sequential default" (goal <= 1/3). The tasks, search spaces, targets and epoch budget are
``bench/search_efficiency.py``'s (digits-cnn, tabular-mlp, synthetic-hard). Two arms, both
``tunelab tune``'s default search (``sampler: auto``, ASHA, sick-trial stopping) on the same
prepared data, one torch thread each, one after the other for each seed:

- ``sequential``: ``tune.executor: local`` (one trial at a time);
- ``population``: ``tune.executor: population`` (``tune.population``, default ``auto``): K
  trials asked at once, grouped by parameter shapes and batch size, each group trained as one
  vectorised population, with packing and optimiser mixing off (``PopulationExecutor.pack =
  False``, ``mix_optimizers = False``: one group per shape and optimiser, as before either
  existed);
- ``unmixed``: packing on (a narrower MLP joins a running wider group where ``packing_pays``),
  one group per optimiser;
- ``packed``: the default, packing on and optimisers mixed (a study that searches the
  optimiser trains its trials of every optimiser in one population per shape).

Each run stops as soon as any reported epoch reaches the task's target (or when the epochs of
``--trials`` full trials are used up: never reached). Reported per task: the median wall time
to the stop over the seeds (a run that never reached the target counts as infinite), the
population / sequential ratio of the medians and per seed, epochs trained, and the test
accuracy of the best trial's kept weights. Seeds from 400 on were never used to choose a
default (the packing rule was chosen on ``bench/population.py --packing``, no study seeds).

    python bench/population_search.py [--seeds 5] [--seeds-from 400] [--tasks ...] \
        [--population K] [--arms sequential population unmixed packed]

``--fixed`` measures packing and mixing alone on a fixed workload instead: the same tasks'
spaces with ``sampler: random``, no pruner, early stopping off, 4 epochs a trial and an
unreachable target (every arm trains the same trials: a random sampler's draws do not depend
on the results), the population executor with packing off, on, and on with optimisers mixed,
interleaved; printed: wall seconds, member-epochs, group-epochs (population epochs trained)
and members per group-epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from optuna.storages import RDBStorage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_efficiency import (  # the sibling bench: its tasks, targets and helpers
    TASKS,
    best_test_accuracy,
    config,
    epochs_to_target,
    search,
    total_epochs,
)

from tunelab.config import parse_config
from tunelab.data import prepare_data
from tunelab.tune._executor import make_executor

ARMS = ("sequential", "population", "unmixed", "packed")


def run_one(task: str, seed: int, arm: str, trials: int, root: Path, bundle, population) -> dict:
    raw = config(task, seed, root, f"{arm}")
    raw["tune"]["executor"] = "local" if arm == "sequential" else "population"
    if arm != "sequential":
        raw["tune"]["population"] = population
    cfg = parse_config(raw)
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"trials": 1000})})
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    target = TASKS[task]["target"]
    first: list[float] = []  # wall time of the first report at the target
    original = RDBStorage.set_trial_intermediate_value

    def timed(self, trial_id, step, value):  # both arms report each epoch through here
        if not first and value >= target:
            first.append(time.perf_counter())
        return original(self, trial_id, step, value)

    RDBStorage.set_trial_intermediate_value = timed
    executor = make_executor(cfg.tune)
    if arm != "sequential":
        executor.pack = arm in ("unmixed", "packed")
        executor.mix_optimizers = arm == "packed"
    started = time.perf_counter()
    try:
        study, _ = search(cfg, bundle, task, trials, executor=executor)
    finally:
        RDBStorage.set_trial_intermediate_value = original
    seconds = time.perf_counter() - started
    reached = epochs_to_target(study, TASKS[task]["target"])
    return {
        "task": task,
        "seed": seed,
        "arm": arm,
        "reached": reached is not None,
        "seconds": round(seconds, 2),
        # the first epoch at the target (the study goes on to finish the trials then running:
        # one for sequential, up to K for population)
        "seconds_to_report": round(first[0] - started, 2) if first else None,
        "epochs_to_target": reached,
        "epochs_total": total_epochs(study),
        "trials": len(study.trials),
        "packed_trials": getattr(executor, "packed_trials", 0),
        "test_accuracy_of_best": best_test_accuracy(study, cfg.run_dir, bundle),
    }


def fixed_workload(
    task: str, seed: int, pack: bool, root: Path, bundle, population, mix: bool = False
) -> dict:
    """One study of the fixed workload (module doc, ``--fixed``)."""
    from tunelab.train import Population

    raw = config(task, seed, root, f"fixed-{pack}-{mix}")
    raw["tune"].update(
        executor="population", population=population, sampler="random", pruner="none"
    )
    raw["train"].update(early_stopping={"enabled": False}, epochs=4)
    cfg = parse_config(raw)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    executor = make_executor(cfg.tune)
    executor.pack, executor.mix_optimizers = pack, mix
    members: list[int] = []  # members trained by each population epoch
    original = Population.train_epoch

    def counted(self):
        out = original(self)
        members.append(len(out))
        return out

    Population.train_epoch = counted
    target, TASKS[task]["target"] = TASKS[task]["target"], 2.0  # never reached
    started = time.perf_counter()
    try:
        search(cfg, bundle, task, 20, executor=executor)
    finally:
        Population.train_epoch = original
        TASKS[task]["target"] = target
    return {
        "task": task,
        "seed": seed,
        "pack": pack,
        "mix": mix,
        "seconds": round(time.perf_counter() - started, 2),
        "member_epochs": sum(members),
        "group_epochs": len(members),
        "members_per_group_epoch": round(sum(members) / max(1, len(members)), 2),
        "packed_trials": executor.packed_trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds-from", type=int, default=400)
    parser.add_argument("--trials", type=int, default=30, help="budget: epochs of N full trials")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--population", default="auto", help="tune.population (K or auto)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="sequential first"
    )
    parser.add_argument("--fixed", action="store_true", help="packing on a fixed workload")
    args = parser.parse_args()
    population = args.population if args.population == "auto" else int(args.population)
    torch.set_num_threads(1)
    if args.fixed:
        with tempfile.TemporaryDirectory() as tmp:
            for task in args.tasks:
                bundle = prepare_data(parse_config(config(task, 0, Path(tmp), "x")).data, seed=0)
                for seed in range(args.seeds_from, args.seeds_from + args.seeds):
                    order = [(False, False), (True, False), (True, True)]
                    shift = seed % len(order)  # rotate which goes first
                    for pack, mix in order[shift:] + order[:shift]:
                        row = fixed_workload(task, seed, pack, Path(tmp), bundle, population, mix)
                        print(json.dumps(row), flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            bundle = prepare_data(parse_config(config(task, 0, Path(tmp), "x")).data, seed=0)
            for seed in range(args.seeds_from, args.seeds_from + args.seeds):
                # Rotate which arm goes first, so a drifting machine load hurts all alike.
                shift = seed % len(args.arms)
                for arm in args.arms[shift:] + args.arms[:shift]:
                    row = run_one(task, seed, arm, args.trials, Path(tmp), bundle, population)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    print(
        f"\nwall seconds until val_accuracy >= target (never reached: inf); median over "
        f"{args.seeds} seeds from {args.seeds_from}; population = {args.population}"
    )
    for field in ("seconds", "seconds_to_report"):
        summary = _summary(rows, args, field)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


def _summary(rows: list[dict], args: argparse.Namespace, field: str) -> dict:
    """Print and return the medians of ``field`` (seconds until the study returns, or until the
    first epoch at the target was reported) and each population arm's ratio to sequential."""
    base, others = args.arms[0], args.arms[1:]
    print(f"\n{field}:")
    head = "".join(f" {a:>11}" for a in args.arms)
    print(f"{'task':<16}{head}  ratios to {base} (median; per seed)")
    summary = {}
    for task in args.tasks:
        med = {}
        for arm in args.arms:
            values = [
                r[field] if r["reached"] else math.inf
                for r in rows
                if r["task"] == task and r["arm"] == arm
            ]
            med[arm] = statistics.median(values)
        ratios, text = {}, []
        for arm in others:
            per_seed = []
            for seed in range(args.seeds_from, args.seeds_from + args.seeds):
                s, p = (
                    next(
                        r for r in rows if r["task"] == task and r["seed"] == seed and r["arm"] == a
                    )
                    for a in (base, arm)
                )
                ratio = (p[field] / s[field]) if s["reached"] and p["reached"] else math.nan
                per_seed.append(
                    f"{ratio:.2f}"
                    if not math.isnan(ratio)
                    else f"{'Y' if p['reached'] else 'N'}/{'Y' if s['reached'] else 'N'}"
                )
            ratios[arm] = med[arm] / med[base] if math.isfinite(med[base]) else math.nan
            text.append(f"{arm} {ratios[arm]:.2f} ({', '.join(per_seed)})")
        summary[task] = {"median_seconds": med, "ratio": ratios}
        print(
            f"{task:<16}" + "".join(f" {med[a]:>11.1f}" for a in args.arms) + "  " + "; ".join(text)
        )
    return summary


if __name__ == "__main__":
    main()
