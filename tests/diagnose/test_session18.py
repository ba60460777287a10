"""Rules from held-out set D's misses (session 18): zero initialisation, functional
activations, saturation from the initial scale, dead units beside tiny steps, label columns."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.diagnose import DiagnosisReport, Doctor, TrainingRecord, check_data
from tunelab.diagnose._detect_activations import SaturatedActivations
from tunelab.diagnose._finding import Finding
from tunelab.diagnose._record import ActivationStat, EpochRecord

from .zoo import dataset


def _fit(model: nn.Module, X, y, *, epochs: int = 4, lr: float = 1e-3, batch: int = 32) -> Doctor:
    X, y = torch.as_tensor(X), torch.as_tensor(y).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    doc = Doctor(model, optimizer)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            optimizer.step()
            total += float(loss.detach())
        doc.end_epoch(train_loss=total / max(1, len(X) // batch))
    return doc


def test_a_zero_initialised_net_is_vanishing_gradients_not_dead_units():
    X_train, y_train, _, _ = dataset("digits")
    model = nn.Sequential(
        nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10)
    )
    for p in model.parameters():
        nn.init.zeros_(p)
    report = _fit(model, X_train, y_train).diagnose()
    vanishing = report.get("vanishing_gradients")
    assert vanishing is not None and vanishing.severity == "error"
    assert vanishing.figures["zero_weight_layers"] == ["0", "2", "4"]
    assert report.get("dead_relu") is None
    assert report.causes[0].kind == "vanishing_gradients"


class FunctionalTanh(nn.Module):
    """Activations called as functions: no activation module to hook."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)
        for layer in (self.fc1, self.fc2):
            nn.init.normal_(layer.weight, std=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.fc2(F.tanh(self.fc1(x)))))


def test_functional_activations_are_counted_and_their_saturation_found():
    X_train, y_train, _, _ = dataset("digits")
    doc = _fit(FunctionalTanh(scale=2.0), X_train, y_train, epochs=3)
    stats = doc.record_.epochs[-1].activations
    assert [a.name for a in stats] == ["tanh()", "tanh()#2"]
    assert all(a.family == "squash" and a.rows >= 32 for a in stats)
    assert doc.diagnose().get("saturated_activations") is not None
    # A Glorot-scaled net calls the same functions and is not saturated.
    calm = _fit(FunctionalTanh(scale=0.1), X_train, y_train, epochs=3).diagnose()
    assert calm.get("saturated_activations") is None


def test_a_model_without_activation_calls_leaves_the_function_mode_after_one_forward():
    X_train, y_train, _, _ = dataset("digits")
    doc = _fit(nn.Linear(64, 10), X_train, y_train, epochs=1)
    assert doc._functional is False and doc._mode is None
    assert doc.record_.epochs[-1].activations == []


def _squash_record(first_gain: float, last_gain: float) -> TrainingRecord:
    rec = TrainingRecord(step_losses=[1.0] * 40)
    for e in range(1, 6):
        epoch = EpochRecord(e, e * 10, train_loss=1.0)
        stat = ActivationStat("3", "squash", 256, 128)
        stat.saturated_values = 0.5
        stat.mean_gain = first_gain + (last_gain - first_gain) * (e - 1) / 4
        epoch.activations = [stat]
        rec.epochs.append(epoch)
    return rec


def test_a_fifth_of_the_slope_from_the_first_epoch_is_saturation():
    (finding,) = SaturatedActivations().check(_squash_record(0.15, 0.14))
    assert finding.severity == "warning" and "14.0%" in finding.evidence
    # The same slope reached during training (a bottleneck pushed to its extremes) is not.
    assert SaturatedActivations().check(_squash_record(0.9, 0.14)) == []
    # Below a twentieth it is an error whenever it happens.
    assert SaturatedActivations().check(_squash_record(0.9, 0.04))[0].severity == "error"
    # A healthy slope is left alone.
    assert SaturatedActivations().check(_squash_record(0.6, 0.5)) == []


def _dead(first: float, latest: float) -> Finding:
    return Finding(
        "dead_relu",
        "warning",
        "units off",
        {
            "dead_fraction_by_layer": {"9": latest},
            "worst_layer": "9",
            "worst_layer_units": 64,
            "worst_layer_first_share": first,
        },
        first_seen={"epoch": 1},
    )


def _slow(update: float) -> Finding:
    return Finding(
        "slow_convergence",
        "warning",
        "loss still 100%",
        {"median_update_ratio": update},
        first_seen={"epoch": 2},
    )


def test_units_off_from_the_start_under_tiny_steps_are_the_steps_consequence():
    report = DiagnosisReport([_dead(0.42, 0.5), _slow(8e-5)])
    assert [f.kind for f in report.causes] == ["slow_convergence"]
    assert [f.kind for f in report.consequences_of("slow_convergence")] == ["dead_relu"]
    # Units that died during the run explain the stall themselves.
    report = DiagnosisReport([_dead(0.05, 0.6), _slow(8e-5)])
    assert [f.kind for f in report.causes] == ["dead_relu"]
    # Steps of a healthy size: the dead units stay the cause.
    report = DiagnosisReport([_dead(0.42, 0.5), _slow(5e-3)])
    assert [f.kind for f in report.causes] == ["dead_relu"]


def _label_coded(seed: int, leak: bool):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(
        1500, 8, n_informative=4, n_classes=3, class_sep=0.8, random_state=seed
    )
    if leak:
        rng = np.random.default_rng(seed)
        X = np.column_stack([X, y + rng.normal(0, 0.05, len(y))])
    X = X.astype(np.float32)
    return train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)


def test_a_column_that_gives_the_label_away_is_leakage():
    X_train, X_val, y_train, y_val = _label_coded(0, leak=True)
    findings = check_data(X_train, y_train, X_val, y_val)
    leak = next(f for f in findings if f.kind == "data_leakage")
    assert leak.severity == "warning" and leak.figures["label_column"] == 8
    assert leak.figures["column_accuracy"] >= 0.99 > leak.figures["other_columns_accuracy"]
    assert "column 8" in leak.remedy and leak.config_change is None
    X_train, X_val, y_train, y_val = _label_coded(0, leak=False)
    assert not [f for f in check_data(X_train, y_train, X_val, y_val) if f.kind == "data_leakage"]


def test_easy_data_where_every_view_separates_the_classes_is_not_leakage():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(900, n_features=4, centers=3, cluster_std=0.3, random_state=0)
    X = X.astype(np.float32)
    for X_train, y_train, X_val, y_val in (
        (X[:600], y[:600], X[600:], y[600:]),
        dataset("iris"),
        dataset("wine"),
        dataset("breast_cancer"),
    ):
        findings = check_data(X_train, y_train, X_val, y_val)
        assert not [f for f in findings if "label_column" in (f.figures or {})]


def _saturated(from_start: bool) -> Finding:
    return Finding(
        "saturated_activations",
        "warning",
        "flat units",
        {"from_initialisation": from_start},
        first_seen={"epoch": 1},
    )


def test_units_saturated_from_the_start_explain_the_overfitting_beside_them():
    overfit = Finding("overfitting", "error", "gap", {}, first_seen={"epoch": 4})
    report = DiagnosisReport([overfit, _saturated(True)])
    assert [f.kind for f in report.causes] == ["saturated_activations"]
    overfit = Finding("overfitting", "error", "gap", {}, first_seen={"epoch": 4})
    report = DiagnosisReport([overfit, _saturated(False)])
    assert [f.kind for f in report.causes] == ["overfitting", "saturated_activations"]


def test_a_loss_that_starts_below_zero_is_not_judged_in_shares_of_itself():
    """A Poisson NLL on log-rates starts near or below zero; the rules measured in shares of the
    initial loss have nothing to measure and must not fail (set D's Poisson run raised)."""
    from tunelab.diagnose._detect_fit import Underfitting
    from tunelab.diagnose._detect_loss import SlowConvergence

    rec = TrainingRecord(step_losses=[-0.5 - 0.01 * i for i in range(60)])
    for e in range(1, 7):
        rec.epochs.append(EpochRecord(e, e * 10, train_loss=-0.5 - 0.1 * e))
    assert SlowConvergence().check(rec) == []
    assert Underfitting().check(rec) == []


def test_steps_held_at_4x_are_no_blow_up_when_the_run_then_reaches_the_baseline():
    from tunelab.diagnose._detect_loss import DivergingLoss

    def record(best: float, baseline: bool = True) -> TrainingRecord:
        losses = [0.67, 2.8, 5.1, 1.6, 1.1, 0.5] + [0.3 * 0.97**i for i in range(200)]
        rec = TrainingRecord(step_losses=losses, metric_mode="max")
        if baseline:
            rec.baseline = {"model": "linear", "score": 0.946}
        for e in range(1, 11):
            epoch = EpochRecord(e, e * 20, train_loss=losses[e * 20 - 1], val_metric=best)
            epoch.val_rows = 300
            rec.epochs.append(epoch)
        return rec

    # Adagrad's first full-rate steps: 4.2x and 7.6x the first loss, then the baseline's score.
    assert DivergingLoss().check(record(best=0.957)) == []
    # The same steps in a run that stays far below the baseline, or with no baseline to ask.
    assert DivergingLoss().check(record(best=0.47))[0].severity == "warning"
    assert DivergingLoss().check(record(best=0.957, baseline=False))[0].kind == "diverging_loss"
