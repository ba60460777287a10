"""The public API in a hand-written PyTorch loop, exactly as the issue writes it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.diagnose import DiagnosisReport, Doctor, Finding

from .zoo import dataset


def _loader(X, y, batch=32, seed=0):
    ds = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y).long())
    return torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )


def test_issue_example_loop_runs_and_reports():
    X_train, y_train, X_val, y_val = dataset("wine")
    findings = Doctor.check_data(X_train, y_train, X_val, y_val, task="classification")
    assert all(isinstance(f, Finding) for f in findings)
    model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=30.0)  # far too high: it must diverge
    loss_fn = nn.CrossEntropyLoss()
    loader = _loader(X_train, y_train, batch=16)
    doc = Doctor(model, optimizer)
    for _epoch in range(3):
        for xb, yb in doc.watch(loader):
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            optimizer.step()
        with torch.no_grad():
            val_loss = float(loss_fn(model(torch.as_tensor(X_val)), torch.as_tensor(y_val).long()))
        doc.end_epoch(train_loss=float(loss.detach()), val_loss=val_loss)
    report = doc.diagnose()
    assert isinstance(report, DiagnosisReport)
    assert isinstance(report.summary(), str) and "diverging_loss" in report.summary()
    diverging = report.get("diverging_loss")
    assert diverging.severity == "error"
    assert diverging.config_change["train.lr"] == pytest.approx(3.0)
    assert set(diverging.first_seen) == {"epoch", "step"}


def test_watch_yields_the_loaders_batches_unchanged():
    X, y = np.arange(40, dtype=np.float32).reshape(20, 2), np.arange(20) % 2
    ds = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=6)
    doc = Doctor(nn.Linear(2, 2), None)
    got = [xb.clone() for xb, _ in doc.watch(loader)]
    want = [xb for xb, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    doc.end_epoch()
    assert doc.record.epochs[0].batches == 4


def test_diagnose_mid_epoch_without_end_epoch():
    X, y, _, _ = dataset("digits", rows=400)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    doc = Doctor(model, opt, every_n_steps=2)
    for i, (xb, yb) in enumerate(doc.watch(_loader(X, y))):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        doc.after_backward(loss)
        opt.step()
        if i == 6:
            break
    report = doc.diagnose()  # no epoch finished yet
    assert report.steps == 7 and report.epochs == 0
    assert "diverging_loss" in report.kinds("warning")


def test_after_backward_alone_is_enough_for_gradient_checks():
    X, y, _, _ = dataset("digits", rows=400)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y).long()
    layers = []
    for i in range(8):
        layers += [nn.Linear(64 if i == 0 else 32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    doc = Doctor(model, opt, every_n_steps=3)
    for step in range(30):
        idx = slice((step * 32) % 256, (step * 32) % 256 + 32)
        loss = F.cross_entropy(model(Xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        doc.after_backward(loss.item())  # a plain float is accepted too
        opt.step()
    finding = doc.diagnose().get("vanishing_gradients")
    assert finding is not None and finding.is_problem
    assert finding.figures["first_over_last"] < 1e-3


def test_update_ratios_are_measured_after_the_optimizer_step():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    doc = Doctor(model, opt, every_n_steps=1)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    doc.after_backward(loss)
    w0 = model[0].weight.detach().clone()
    opt.step()
    sample = doc.record.grad_samples[-1]
    expected = float((model[0].weight.detach() - w0).norm() / w0.norm())
    assert sample.update_ratio[0] == pytest.approx(expected, rel=1e-4)
    assert sample.names == ["0", "2"]


def test_out_of_memory_in_forward_is_caught_as_memory_pressure():
    class Greedy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.shape[0] > 8:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.fc(x)

    model = Greedy()
    doc = Doctor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(torch.OutOfMemoryError):
        model(torch.randn(16, 4))
    finding = doc.diagnose().get("memory_pressure")
    assert finding.severity == "error" and "2.00 GiB" in finding.evidence
    assert finding.config_change == {"train.batch_size": 8, "train.accumulate_steps": 2}


def test_guard_records_cpu_allocation_failures():
    doc = Doctor(nn.Linear(2, 2), None)
    with pytest.raises(RuntimeError), doc.guard():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
    with doc.guard(suppress=True):
        raise MemoryError()
    assert len(doc.record.ooms) == 2
    with pytest.raises(ValueError), doc.guard():
        raise ValueError("not memory")
    assert len(doc.record.ooms) == 2


def test_memory_budget_close_to_the_peak_is_a_warning():
    doc = Doctor(nn.Linear(2, 2), None, memory_budget=1)  # 1 byte: any process is over it
    doc.end_epoch()
    assert doc.diagnose().get("memory_pressure").severity == "warning"


def test_report_survives_json_round_trip(tmp_path):
    doc = Doctor(nn.Linear(2, 2), None, memory_budget=1)
    doc.end_epoch()
    report = doc.diagnose()
    path = report.save(tmp_path / "findings.json")
    again = DiagnosisReport.load(path)
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in report.findings]
    assert json.loads(path.read_text())["findings"][0]["kind"] == "memory_pressure"


def _twelve_steps(model: nn.Module) -> Doctor:
    """Twelve SGD steps of a 4-input, 2-class model under the doctor, then one epoch end."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    doc = Doctor(model, opt)
    for _ in range(12):
        loss = F.cross_entropy(model(torch.randn(32, 4)), torch.randint(0, 2, (32,)))
        opt.zero_grad()
        loss.backward()
        doc.after_backward(loss)
        opt.step()
    doc.end_epoch()
    return doc


def test_functional_relu_is_counted_like_a_module():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 16), nn.Linear(16, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(x) - 100.0))  # every unit dead

    doc = _twelve_steps(Functional())
    (relu,) = doc.record.epochs[0].activations
    assert (relu.name, relu.family, relu.dead_fraction) == ("relu()", "relu", 1.0)
    assert len(doc.record.step_losses) == 12 and all(map(math.isfinite, doc.record.step_losses))
    dead = doc.diagnose().get("dead_relu")
    assert dead.severity == "error" and dead.figures["dead_layers"] == ["relu()"]


def test_dead_units_show_in_the_gradients_when_no_activation_is_seen():
    """Activations outside torch's function dispatch (here: a clamp) are not counted; a layer
    whose weight gradient is mostly exactly zero still shows units that never fire."""

    class Clamped(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 16), nn.Linear(16, 2)

        def forward(self, x):
            return self.b((self.a(x) - 100.0).clamp(min=0))

    doc = _twelve_steps(Clamped())
    assert doc.record.epochs[0].activations == []
    dead = doc.diagnose().get("dead_relu")
    assert dead.severity == "error" and dead.figures["layer"] == "b"


def test_reused_activation_module_gets_one_entry_per_call():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.c(self.act(self.b(self.act(self.a(x)))))

    model = Shared()
    doc = Doctor(model, None, every_n_steps=1)
    model(torch.randn(64, 4)).sum().backward()
    doc.after_backward(None)
    doc.end_epoch()
    assert [a.name for a in doc.record.epochs[0].activations] == ["act", "act#2"]


def test_close_removes_every_hook():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    doc = Doctor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    doc.close()
    assert not model._forward_hooks and not model[1]._forward_hooks
    assert not model._forward_pre_hooks


def test_without_watch_the_model_input_is_checked_for_nan_and_scale():
    X, y, _, _ = dataset("breast_cancer", scaled=False)
    X = X.copy()
    X[40, 3] = np.nan
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y).long()
    model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    doc = Doctor(model, opt, every_n_steps=2)
    for i in range(0, len(Xt), 16):  # no DataLoader, no watch(): index the tensors directly
        loss = F.cross_entropy(model(Xt[i : i + 16]), yt[i : i + 16])
        opt.zero_grad()
        loss.backward()
        doc.after_backward(loss)
        opt.step()
    kinds = doc.diagnose().kinds("warning")
    assert {"nan_or_inf_data", "unscaled_inputs", "diverging_loss"} <= kinds


def _sgd_loop(lr: float, epochs: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    X_train, y_train, _, _ = dataset("digits")
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loader = _loader(X_train, y_train, batch=32, seed=seed)
    doc = Doctor(model, optimizer)
    for _epoch in range(epochs):
        total = 0.0
        for xb, yb in doc.watch(loader):
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            optimizer.step()
            total += float(loss.detach())
        doc.end_epoch(train_loss=total / len(loader))
    return model, optimizer, loader, doc


def test_find_lr_in_a_plain_loop_measures_the_prescribed_rate_and_only_looks():
    model, optimizer, _, doc = _sgd_loop(1e-4)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    before = {f.kind: f for f in doc.diagnose().findings}
    assert before["slow_convergence"].config_change["train.lr"] == 0.001  # the 10x step

    result = doc.find_lr(F.cross_entropy, steps=60)

    # It only looked: weights, the optimiser's learning rate and state, torch's RNG.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert optimizer.param_groups[0]["lr"] == 1e-4 and not optimizer.state
    assert torch.equal(torch.get_rng_state(), rng)
    assert 1e-4 < result.suggestion < 10
    after = {f.kind: f for f in doc.diagnose().findings}
    # The prescription names the measured rate, not a step.
    assert after["slow_convergence"].config_change["train.lr"] == float(f"{result.suggestion:.3g}")
    assert doc.state_dict()["lr_range"]["suggestion"] == result.suggestion


def test_find_lr_prescription_never_moves_the_rate_the_wrong_way():
    from tunelab.diagnose import RemedyContext
    from tunelab.diagnose._remedies import prescribe

    # A measured rate below the current one cannot be a "raise_lr" prescription...
    slow = prescribe(
        Finding("slow_convergence", "warning", "slow"), RemedyContext(lr=0.01, measured_lr=0.001)
    )
    assert slow.config_change["train.lr"] > 0.01
    # ...and one above it cannot lower the rate for an oscillating loss.
    osc = prescribe(
        Finding("oscillating_loss", "warning", "osc"), RemedyContext(lr=0.01, measured_lr=0.1)
    )
    assert osc.config_change["train.lr"] < 0.01
    osc = prescribe(
        Finding("oscillating_loss", "warning", "osc"), RemedyContext(lr=0.01, measured_lr=0.001)
    )
    assert osc.config_change["train.lr"] == 0.001


def test_find_lr_needs_batches():
    model = nn.Sequential(nn.Linear(4, 2))
    doc = Doctor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="watch"):
        doc.find_lr(F.cross_entropy)


def test_sigmoid_units_pinned_near_their_flat_part_are_named_as_the_cause():
    """Sigmoid layers whose biases start at +6 output ~0.9975 (each unit's slope ~1% of its
    peak, half the values either side of the flat-region bar): the layers' mean slope names
    the saturation, the cause of the vanishing gradient, not the vanishing gradient alone
    (session 13's held-out set B)."""
    from tunelab.diagnose._probes import relative_derivative

    y = torch.tensor([0.0, 0.5, 1.0])
    assert relative_derivative(nn.Sigmoid(), y).tolist() == [0.0, 1.0, 0.0]
    assert relative_derivative(nn.Tanh(), torch.tensor([0.0, 1.0])).tolist() == [1.0, 0.0]

    X_train, y_train, X_val, y_val = dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(X_train.shape[1], 64),
        nn.Sigmoid(),
        nn.Linear(64, 64),
        nn.Sigmoid(),
        nn.Linear(64, 10),
    )
    for layer in (model[0], model[2]):
        nn.init.constant_(layer.bias, 6.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    doc = Doctor(model, optimizer)
    for _epoch in range(4):
        for xb, yb in doc.watch(_loader(X_train, y_train)):
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            optimizer.step()
        with torch.no_grad():
            val_loss = float(loss_fn(model(torch.as_tensor(X_val)), torch.as_tensor(y_val).long()))
        doc.end_epoch(train_loss=float(loss.detach()), val_loss=val_loss)
    report = doc.diagnose()
    saturated = report.get("saturated_activations")
    assert saturated is not None and report.causes[0].kind == "saturated_activations"
    gains = saturated.figures["mean_gain_by_layer"]
    assert gains and max(gains.values()) < 0.05 and "mean slope" in saturated.evidence


def test_the_epoch_loss_weighs_each_step_by_its_batch_rows():
    """A step loss is a mean over its batch: the epoch loss weighs each by the rows watch()
    saw, so a last batch of 4 rows counts for 4 rows, not for a full batch (zoo seed 325: the
    unweighted mean made a loss that fell every epoch read as rising). Without watch() the
    rows are unknown and the plain mean stays."""
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    batches = [(torch.zeros(n, 3), torch.zeros(n, dtype=torch.long)) for n in (32, 32, 4)]
    losses = [0.2, 0.3, 2.0]  # the 4-row batch's loss is an outlier

    doc = Doctor(model, optimizer)
    for (_xb, _yb), value in zip(doc.watch(batches), losses, strict=True):
        doc.after_backward(torch.tensor(value))
    doc.end_epoch()
    assert doc.record_.epochs[0].loss == pytest.approx((0.2 * 32 + 0.3 * 32 + 2.0 * 4) / 68)

    shown = Doctor(model, optimizer, step_inputs=True)  # the Trainer passes the inputs
    for (xb, _yb), value in zip(batches, losses, strict=True):
        shown.after_backward(torch.tensor(value), [xb])
    shown.end_epoch()
    assert shown.record_.epochs[0].loss == pytest.approx(doc.record_.epochs[0].loss)
    shown.close()

    plain = Doctor(model, optimizer)
    for value in losses:
        plain.after_backward(torch.tensor(value))
    plain.end_epoch()
    assert plain.record_.epochs[0].loss == pytest.approx(sum(losses) / 3)
    doc.close()
    plain.close()
