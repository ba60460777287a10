"""Training epochs until the best validation accuracy first reaches a target, per search method.

Three tasks where hyperparameters matter (wide learning-rate ranges include settings that never
learn and settings that blow up):

- ``digits-cnn``: sklearn digits as 1x8x8 images, a small CNN;
- ``tabular-mlp``: sklearn digits as 64 flat numeric columns, an MLP;
- ``synthetic-hard``: make_classification (4 classes, 10 informative of 30 features, low class
  separation, 3% flipped labels), an MLP.

Methods, all training with the same Trainer, data, epochs per trial and early stopping:

- ``tunelab``: the default of ``tunelab tune`` -- ``sampler: auto`` (multivariate TPE here),
  ``pruner: asha``, sick-trial stopping on;
- ``tunelab-nopruning``: the same sampler and sick-trial stopping, no pruner (so the share of
  the pruning in ``tunelab``'s figure is visible);
- ``tunelab-r4`` (on request, ``--methods``): ``tunelab`` with ``tune.reduction_factor: 4``, the
  default before session 7 (with these tasks' 10-12 epoch trials and a 30-trial budget the
  start-up trials, 6, and the first rung, epoch 1, are the same as before: only ``r`` changed);
- ``tpe``: Optuna's ``TPESampler()`` with its defaults, no pruning, no sick-trial stopping;
- ``random``: ``RandomSampler()``, no pruning, no sick-trial stopping.

Each (task, seed, method) runs trials one after another until any epoch of any trial reaches the
task's target validation accuracy, or until it has trained as many epochs as ``--trials`` full
trials would (the same training budget for every method; a pruning method runs more, shorter
trials within it). The score is the total number of epochs trained by then (every epoch of every
trial, pruned ones included); a run that never reaches the target counts as infinite. Reported:
the median over seeds, and tunelab's median as a fraction of plain TPE's (goal: <= 0.5); and,
so that reaching the target fast cannot hide a worse model, the test accuracy of the best
trial's kept weights when the run stopped.

Seeds: ``--seeds-from`` (default 0). The defaults being verified were chosen on seeds 0-4
(reduction factor) and 100-104 (first rung); verdicts are given on seeds from 300 on.

Targets were set from one pilot of 20 random trials per task (seed 0): roughly the value that
3 of the 20 reached. The data set of a task is the same for every seed; the seed varies the
sampler and the weight initialisation. The samplers share their seed, so the first (random)
trials of all three methods coincide -- when the target falls in those, they tie.

    python bench/search_efficiency.py [--seeds 5] [--trials 30] [--tasks ...] [--json out.json]
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

import optuna
import torch

from tunelab.config import parse_config
from tunelab.data import prepare_data
from tunelab.models import load_model
from tunelab.tune._budget import Budget
from tunelab.tune._engine import build_study, execute, quiet_optuna
from tunelab.tune._objective import TrainingObjective
from tunelab.tune._options import StudyOptions
from tunelab.tune._space import config_spaces

TRAIN = {
    "batch_size": {"choice": [16, 32, 64, 128]},
    "lr": {"low": 1.0e-5, "high": 1.0, "log": True},
    "optimizer": {"choice": ["adam", "sgd"]},
    "momentum": 0.9,
    "tensorboard": False,
    "deterministic": False,
    "progress": "none",
    "early_stopping": {"patience": 4},
}

TASKS = {
    "digits-cnn": {
        "target": 0.989,  # 267 of 270 validation rows
        "epochs": 10,
        "data": {"source": "sklearn", "dataset": "digits", "as_images": True},
        "model": {
            "builder": "cnn",
            "params": {
                "channels": [8, 16],
                "hidden": {"choice": [0, 32, 64]},
                "dropout": {"low": 0.0, "high": 0.5},
            },
        },
    },
    "tabular-mlp": {
        "target": 0.975,
        "epochs": 10,
        "data": {"source": "sklearn", "dataset": "digits"},
        "model": {
            "builder": "mlp",
            "params": {
                "depth": {"low": 1, "high": 3},
                "width": {"choice": [8, 32, 128]},
                "dropout": {"low": 0.0, "high": 0.5},
            },
        },
    },
    "synthetic-hard": {
        "target": 0.68,
        "epochs": 12,
        "data": {
            "source": "synthetic",
            "synthetic": {
                "n_samples": 2000,
                "n_features": 30,
                "n_informative": 10,
                "n_redundant": 4,
                "n_classes": 4,
                "class_sep": 0.8,
                "flip_y": 0.03,
            },
        },
        "model": {
            "builder": "mlp",
            "params": {
                "depth": {"low": 1, "high": 4},
                "width": {"choice": [16, 64, 256]},
                "dropout": {"low": 0.0, "high": 0.5},
            },
        },
    },
}


class TargetBudget(Budget):
    """An epoch budget, plus: stop once any reported epoch reaches ``target``."""

    def __init__(self, max_total_epochs: int, target: float) -> None:
        super().__init__(max_total_epochs=max_total_epochs, trials=1000)
        self.target = target

    def exhausted(self, study: optuna.Study) -> str | None:
        if epochs_to_target(study, self.target) is not None:
            return "target reached"
        return super().exhausted(study)


def epochs_to_target(study: optuna.Study, target: float) -> int | None:
    """Epochs trained (in trial order) until a validation accuracy >= target; None if never."""
    total = 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        for step in sorted(trial.intermediate_values):
            total += 1
            if trial.intermediate_values[step] >= target:
                return total
    return None


def total_epochs(study: optuna.Study) -> int:
    return sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))


def config(task: str, seed: int, run_root: Path, method: str) -> dict:
    spec = TASKS[task]
    return {
        "name": f"{task}-{method}-{seed}",
        "seed": seed,
        "run_root": str(run_root),
        "data": spec["data"],
        "model": spec["model"],
        "train": {**TRAIN, "epochs": spec["epochs"], "monitor": "val_accuracy"},
        "tune": {
            "metric": "val_accuracy",
            "pruner": "asha" if method in ("tunelab", "tunelab-r4") else "none",
            "stop_sick_trials": method.startswith("tunelab"),
            # tunelab's reduction factor before session 7 (4; the default is 3 since).
            **({"reduction_factor": 4} if method == "tunelab-r4" else {}),
            "heartbeat_interval": 0,
            "progress": "none",
        },
    }


def run_one(task: str, seed: int, method: str, trials: int, root: Path, bundle) -> dict:
    cfg = parse_config(config(task, seed, root, method))
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"trials": trials})})
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sampler = None
    if method == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif method == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study, sampler_name = search(cfg, bundle, task, trials, sampler=sampler)
    states = [t.state.name for t in study.trials]
    return {
        "task": task,
        "seed": seed,
        "method": method,
        "sampler": sampler_name if method.startswith("tunelab") else method,
        "epochs_to_target": epochs_to_target(study, TASKS[task]["target"]),
        "epochs_total": total_epochs(study),
        "test_accuracy_of_best": best_test_accuracy(study, cfg.run_dir, bundle),
        "trials": len(states),
        "pruned": states.count("PRUNED"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def search(
    cfg, bundle, task: str, trials: int, *, sampler=None, executor=None
) -> tuple[optuna.Study, str]:
    """Run ``cfg``'s study until the task's target or the budget (the epochs of ``trials``
    full trials, the same for every method); ``sampler`` replaces tunelab's, ``executor``
    (``make_executor(cfg.tune)``) replaces the plain trial loop. Returns the study and the
    name of tunelab's sampler."""
    with quiet_optuna():
        options = StudyOptions.from_config(cfg)
        options.progress = "none"
        spaces = config_spaces(cfg)
        opened = build_study(spaces, options)
        study = opened.study
        if sampler is not None:
            study.sampler = sampler
        objective = TrainingObjective(cfg, bundle, run_dir=cfg.run_dir, spaces=spaces)
        budget = TargetBudget(trials * TASKS[task]["epochs"], TASKS[task]["target"])
        if executor is None:
            execute(study, objective, budget, options)
        else:
            executor.run(study, objective, budget, options)
    return study, opened.sampler_name


def best_test_accuracy(study: optuna.Study, run_dir: Path, bundle) -> float | None:
    """Test accuracy of the best complete trial's kept weights (``trials/<n>/best``)."""
    done = [t for t in study.trials if t.state.name == "COMPLETE" and t.value is not None]
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    folder = run_dir / "trials" / str(best.number) / "best"
    if not folder.is_dir():
        return None
    model = load_model(folder).model.eval()
    with torch.no_grad():
        predicted = model(bundle.X_test).argmax(dim=1)
    return round(float((predicted == bundle.y_test).float().mean()), 4)


def median_epochs(rows: list[dict]) -> tuple[float, int]:
    """Median epochs-to-target; a run that never reached the target counts as infinite."""
    values = [
        r["epochs_to_target"] if r["epochs_to_target"] is not None else math.inf for r in rows
    ]
    return statistics.median(values), sum(r["epochs_to_target"] is None for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds-from", type=int, default=0)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        "--methods", nargs="+", default=["tunelab", "tunelab-nopruning", "tpe", "random"]
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            # One data set per task (seed 0): the seeds vary the search, not the problem.
            bundle = prepare_data(parse_config(config(task, 0, Path(tmp), "x")).data, seed=0)
            for seed in range(args.seeds_from, args.seeds_from + args.seeds):
                for method in args.methods:
                    row = run_one(task, seed, method, args.trials, Path(tmp), bundle)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    print(
        f"\nepochs until val_accuracy >= target; median over {args.seeds} seeds; "
        f"budget: the epochs of {args.trials} full trials; never reached counts as infinite"
    )
    print(f"{'task':<16} {'target':>6} " + "".join(f"{m:>18}" for m in args.methods) + "  ratio")
    summary = {}
    for task in args.tasks:
        cells, medians = [], {}
        for method in args.methods:
            med, missed = median_epochs(
                [r for r in rows if r["task"] == task and r["method"] == method]
            )
            medians[method] = med
            cells.append(f"{med:.0f}" + (f" ({missed} missed)" if missed else ""))
        ratio = medians["tunelab"] / medians["tpe"] if "tpe" in medians else math.nan
        tests = {}
        for method in args.methods:
            values = [
                r["test_accuracy_of_best"]
                for r in rows
                if r["task"] == task and r["method"] == method and r["test_accuracy_of_best"]
            ]
            tests[method] = statistics.median(values) if values else math.nan
        summary[task] = {"medians": medians, "ratio_vs_tpe": ratio, "median_test": tests}
        print(
            f"{task:<16} {TASKS[task]['target']:>6} "
            + "".join(f"{c:>18}" for c in cells)
            + f"  {ratio:.2f}"
        )
        print(f"{'  test acc':<16} {'':>6} " + "".join(f"{tests[m]:>18.4f}" for m in args.methods))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
