"""Real run directories for the report tests, built in seconds.

``handmade_run`` writes every file of the run-directory contract by hand from real
computations: a real Optuna SQLite study (complete, pruned and failed trials), a real (tiny)
PyTorch training on digits with its metrics.jsonl and TensorBoard gradient histograms, a real
confusion matrix and classification report from sklearn, findings, fix rounds, a compression
table and an ONNX export. It pins the file formats the report reads independently of the stages
that normally write them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.metrics import classification_report, confusion_matrix


def _train_tiny(trial_dir: Path, epochs: int = 4, seed: int = 0) -> dict:
    """A real 2-layer MLP on digits; writes metrics.jsonl, tensorboard/ and returns result.json."""
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(seed)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xt, yt = torch.from_numpy(X[:1200]), torch.from_numpy(y[:1200])
    Xv, yv = torch.from_numpy(X[1200:1500]), torch.from_numpy(y[1200:1500])
    Xs, ys = torch.from_numpy(X[1500:]), torch.from_numpy(y[1500:])
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    writer = SummaryWriter(str(trial_dir / "tensorboard"))
    rows = []
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for i in range(0, len(Xt), 100):
            loss = loss_fn(model(Xt[i : i + 100]), yt[i : i + 100])
            opt.zero_grad()
            loss.backward()
            for name, p in model.named_parameters():
                writer.add_histogram(f"grad/{name}", p.grad, step)
            opt.step()
            total += float(loss) * len(Xt[i : i + 100])
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(Xv)
            val_loss = float(loss_fn(out, yv))
            val_acc = float((out.argmax(1) == yv).float().mean())
        rows.append(
            {
                "epoch": epoch,
                "train_loss": total / len(Xt),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": 1e-2 * 0.5 ** (epoch - 1),
                "epoch_time_s": 0.01,
            }
        )
    writer.close()
    with (trial_dir / "metrics.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    with torch.no_grad():
        pred = model(Xs).argmax(1).numpy()
    torch.onnx.export(model, (Xs[:1],), str(trial_dir / "model.onnx"), dynamo=False)
    return {
        "status": "completed",
        "reason": "reached train.epochs",
        "best_epoch": epochs,
        "epochs_run": epochs,
        "wall_time_s": 1.5,
        "task": "classification",
        "classes": [str(i) for i in range(10)],
        "best_metrics": rows[-1],
        "test_metrics": {
            "test_accuracy": float((pred == ys.numpy()).mean()),
            "test_loss": 0.3,
        },
        "confusion_matrix": confusion_matrix(ys.numpy(), pred, labels=list(range(10))).tolist(),
        "classification_report": classification_report(
            ys.numpy(), pred, output_dict=True, zero_division=0
        ),
    }


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
    result = _train_tiny(best_dir)
    (best_dir / "result.json").write_text(json.dumps(result))
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
    (best_dir / "findings.json").write_text(json.dumps(findings))
    (trials / "5" / "findings.json").write_text(
        json.dumps(
            [{"kind": "diverging_loss", "severity": "error", "evidence": "x", "remedy": "y"}]
        )
    )
    config = {
        "name": "digits-demo",
        "data": {"source": "sklearn", "dataset": "digits", "task": "auto"},
        "tune": {"metric": "val_accuracy"},
        "deploy": {"host": "127.0.0.1", "port": 8000},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "data_profile.json").write_text(
        json.dumps(
            {
                "name": "digits",
                "task": "classification",
                "n_features": 64,
                "splits": {"train": 1200, "val": 300, "test": 297},
                "cleaning": [{"step": "missing", "action": "median", "rows": 0}],
                "class_balance": {"train": {str(c): 120 for c in range(10)}},
                "constant_columns": ["pixel_0_0"],
            }
        )
    )
    doctor = run / "doctor"
    doctor.mkdir()
    (doctor / "fix_rounds.json").write_text(
        json.dumps(
            [
                {
                    "round": 0,
                    "findings": [
                        {
                            "kind": "diverging_loss",
                            "severity": "error",
                            "evidence": "loss 2.3 -> 41 in 3 epochs",
                            "remedy": "lower the learning rate 10x",
                            "config_change": {"train.lr": 0.05},
                        }
                    ],
                    "val_metric": 0.11,
                    "metric_name": "val_accuracy",
                    "changes": {"train.lr": 0.05},
                },
                {"round": 1, "findings": [], "val_metric": 0.93, "metric_name": "val_accuracy"},
            ]
        )
    )
    compressed = run / "compressed"
    compressed.mkdir()
    (compressed / "table.json").write_text(
        json.dumps(
            [
                {
                    "variant": "original",
                    "params": 2410,
                    "size_mb": 0.01,
                    "p50_b1_ms": 0.05,
                    "test_accuracy": 0.95,
                    "delta": 0.0,
                },
                {
                    "variant": "int8",
                    "params": 2410,
                    "size_mb": 0.004,
                    "p50_b1_ms": 0.03,
                    "test_accuracy": 0.947,
                    "delta": -0.003,
                },
            ]
        )
    )
    export = run / "export"
    export.mkdir()
    (best_dir / "model.onnx").rename(export / "model.onnx")
    (export / "model.json").write_text(
        json.dumps(
            {
                "builder": "mlp",
                "task": "classification",
                "input_shape": [64],
                "classes": [str(i) for i in range(10)],
                "parity": {"max_abs_diff": 2e-7},
            }
        )
    )
    return run


@pytest.fixture
def training_only_run(tmp_path: Path) -> Path:
    """What `tunelab train` leaves: one training directory, no study, no later stages."""
    run = tmp_path / "train-only"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(_train_tiny(run, epochs=2)))
    (run / "model.onnx").unlink()
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "train-only"}))
    return run


@pytest.fixture
def running_study_run(tmp_path: Path) -> Path:
    """A study still in progress: trials running, no best model copied yet."""
    run = tmp_path / "still-running"
    (run / "trials").mkdir(parents=True)
    _study(run / "study.db", run / "trials", n=3, running=True)
    return run
