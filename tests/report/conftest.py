"""Real run directories for the report tests, built in seconds.

``handmade_run`` assembles a run directory from real pieces: a real Optuna SQLite study
(complete, pruned and failed trials), a real training directory from tunelab's trainer for the
best trial (metrics.jsonl, TensorBoard gradient-norm histograms, result.json with the test
evaluation), the data stage's real profile, the compress stage's real table (int8) and the
deploy stage's real ONNX export, plus findings and fix rounds written in the doctor's format.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import optuna
import pytest
import torch
import yaml


def _train(trial_dir: Path, epochs: int = 3) -> None:
    """A real training directory from tunelab's trainer (digits MLP), test-split evaluated."""
    from tunelab.config import parse_config
    from tunelab.train import run_training

    torch.set_num_threads(1)
    cfg = parse_config(
        {
            "name": trial_dir.name,
            "data": {"source": "sklearn", "dataset": "digits"},
            "model": {"builder": "mlp", "params": {"width": 32, "depth": 1}},
            "train": {"epochs": epochs, "lr": 0.01, "progress": "none"},
        }
    )
    run_training(cfg, run_dir=trial_dir)


def _study(db: Path, trials_root: Path, *, n: int = 8, running: bool = False) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="digits",
        storage=f"sqlite:///{db}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.set_metric_names(["val_accuracy"])
    for i in range(n):
        trial = study.ask()
        lr = trial.suggest_float("train.lr", 1e-4, 1e-1, log=True)
        width = trial.suggest_categorical("model.params.width", [16, 32, 64])
        (trials_root / str(trial.number)).mkdir(parents=True)
        score = 0.0
        for epoch in range(1, 5):
            score = 0.9 - 0.05 * abs(math.log10(lr) + 2) + width / 2000 + 0.01 * epoch
            trial.report(score, epoch)
            if i == 3 and epoch == 2:
                break
        if i == 3:
            trial.set_user_attr("reason", "pruned by ASHA at epoch 2 (val_accuracy below rung)")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif i == 5:
            trial.set_user_attr("reason", "diverging_loss: loss rose 40x over its first value")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, score)
    if running:
        study.ask()  # left RUNNING, as by a worker still busy
    return study


@pytest.fixture(scope="session")
def handmade_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "digits-demo"
    trials = run / "trials"
    trials.mkdir(parents=True)
    study = _study(run / "study.db", trials)
    best = study.best_trial.number
    best_dir = trials / str(best)
    _train(best_dir)
    findings = [
        {
            "kind": "overfitting",
            "severity": "warning",
            "evidence": "val_loss rose 3 epochs in a row while train_loss fell (gap 0.21)",
            "figures": {"gap": 0.21},
            "remedy": "raise weight decay or dropout",
            "config_change": {"train.weight_decay": 1e-4},
            "first_seen": {"epoch": 3},
        },
        {
            "kind": "constant_features",
            "severity": "info",
            "evidence": "3 of 64 features are constant",
            "remedy": "none needed for pixel data",
            "config_change": None,
            "first_seen": {"epoch": 0},
        },
    ]
    (best_dir / "findings.json").write_text(json.dumps({"findings": findings}))
    (trials / "5" / "findings.json").write_text(
        json.dumps(
            {
                "findings": [
                    {"kind": "diverging_loss", "severity": "error", "evidence": "x", "remedy": "y"}
                ]
            }
        )
    )
    # The run root as the tuner leaves it: best/ copied from the best trial, its plain config.
    shutil.copytree(best_dir / "best", run / "best")
    config = yaml.safe_load((best_dir / "config.yaml").read_text())
    config["name"] = "digits-demo"
    config["tune"]["metric"] = "val_accuracy"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    from tunelab.config import DataConfig
    from tunelab.data import prepare_data

    prepare_data(DataConfig(source="sklearn", dataset="digits"), seed=0).profile.save(
        run / "data_profile.json"
    )
    # doctor/ as `tunelab doctor --fix` leaves it: one training directory per round.
    doctor = run / "doctor"
    (doctor / "round_0").mkdir(parents=True)
    shutil.copytree(best_dir, doctor / "round_1", ignore=shutil.ignore_patterns("best"))
    diverging = [{"epoch": e, "train_loss": 2.3 * 3**e, "val_accuracy": 0.1} for e in (1, 2, 3)]
    (doctor / "round_0" / "metrics.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in diverging)
    )
    rounds = [
        {
            "round": 0,
            "changes": {},
            "status": "diverged",
            "reason": "loss rose 41x",
            "metric": "val_accuracy",
            "value": 0.11,
            "directory": str(doctor / "round_0"),
            "findings": [
                {
                    "kind": "diverging_loss",
                    "severity": "error",
                    "evidence": "loss 2.3 -> 41 in 3 epochs",
                    "figures": {"ratio": 17.8},
                    "remedy": "lower the learning rate 10x",
                    "config_change": {"train.lr": 0.05},
                    "first_seen": {"epoch": 0, "step": 12},
                }
            ],
        },
        {
            "round": 1,
            "changes": {"train.lr": 0.05},
            "status": "completed",
            "reason": "ran all 3 epochs",
            "metric": "val_accuracy",
            "value": 0.93,
            "directory": str(doctor / "round_1"),
            "findings": [],
        },
    ]
    (doctor / "fix_rounds.json").write_text(
        json.dumps(
            {"repaired": True, "stopped_because": "no warning or error left", "rounds": rounds}
        )
    )
    (doctor / "config.yaml").write_text(yaml.safe_dump(config))
    from tunelab.compress import compress_run
    from tunelab.deploy import export_run

    compress_run(run, methods=["quantize"])
    export_run(run, ["onnx"])
    return run


@pytest.fixture
def training_only_run(handmade_run: Path, tmp_path: Path) -> Path:
    """What `tunelab train` leaves: one training directory, no study, no later stages."""
    # The best trial's directory is what tunelab's trainer wrote (run_training).
    trial = next(p for p in (handmade_run / "trials").iterdir() if (p / "metrics.jsonl").is_file())
    return Path(
        shutil.copytree(trial, tmp_path / "train-only", ignore=shutil.ignore_patterns("findings*"))
    )


@pytest.fixture
def running_study_run(tmp_path: Path) -> Path:
    """A study still in progress: trials running, no best model copied yet."""
    run = tmp_path / "still-running"
    (run / "trials").mkdir(parents=True)
    _study(run / "study.db", run / "trials", n=3, running=True)
    return run
