"""The doctor inside tunelab's Trainer: ``diagnose.enabled`` writes findings.json and more."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from tunelab.config import parse_config
from tunelab.diagnose import Doctor, DoctorCallback, doctor_callbacks
from tunelab.train import run_training


def _cfg(tmp_path, name, **train):
    return parse_config(
        {
            "name": name,
            "run_root": str(tmp_path),
            "data": {"source": "sklearn", "dataset": "digits", "max_rows": 600},
            "model": {"builder": "mlp", "params": {"depth": 1, "width": 32}},
            "train": {"epochs": 4, "progress": "none", **train},
            "diagnose": {"enabled": True, "every_n_steps": 5},
        }
    )


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    cfg = _cfg(tmp_path_factory.mktemp("healthy"), "healthy", lr=3e-3)
    callbacks = doctor_callbacks(cfg, verbose=False)
    return cfg, callbacks[0], run_training(cfg, callbacks=callbacks)


def test_enabled_config_attaches_the_doctor_and_disabled_does_not(tmp_path):
    cfg = _cfg(tmp_path, "x")
    assert [type(c) for c in doctor_callbacks(cfg)] == [DoctorCallback]
    assert doctor_callbacks(cfg.with_values({"diagnose.enabled": False})) == []


def test_healthy_training_writes_clean_findings_json(healthy):
    _, _, run = healthy
    data = json.loads((run.run_dir / "findings.json").read_text())
    assert data["epochs"] == 4 and data["steps"] > 0
    assert [f for f in data["findings"] if f["severity"] != "info"] == []
    assert run.result.status == "completed"


def test_tensorboard_gets_per_layer_gradients_and_dead_fractions(healthy):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, run = healthy
    files = list((run.run_dir / "tensorboard").glob("*.doctor"))
    assert len(files) == 1
    events = EventAccumulator(str(files[0]))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert any(t.startswith("doctor/grad_rms/") for t in tags)
    assert any(t.startswith("doctor/dead_fraction/") for t in tags)
    assert len(events.Scalars(next(t for t in tags if "grad_rms" in t))) == 4


def test_train_score_is_measured_on_the_epochs_the_rules_read(healthy):
    _, callback, _ = healthy
    scores = [e.train_metric for e in callback.doctor.record.epochs]
    # Epochs this short put the doctor over its cost budget, so it may skip a middle epoch's
    # score, never two in a row and never the last two (the overfitting rule reads those).
    assert len(scores) == 4 and all(0 <= s <= 1 for s in scores[-2:])
    assert not any(a is None and b is None for a, b in itertools.pairwise(scores))
    assert scores[-1] > 0.8


def test_stop_on_error_ends_a_diverging_run_early(tmp_path):
    cfg = _cfg(tmp_path, "boom", optimizer="sgd", lr=8.0, momentum=0.0, epochs=6)
    callback = DoctorCallback(cfg.diagnose)  # the tuner's way of building it
    run = run_training(cfg, callbacks=[callback])
    assert run.result.status in ("diverged", "nan")
    assert run.result.epochs_run < 6
    findings = json.loads((run.run_dir / "findings.json").read_text())["findings"]
    assert any(f["kind"] == "diverging_loss" and f["severity"] == "error" for f in findings)


def test_out_of_memory_status_becomes_memory_pressure(tmp_path):
    from .fix_zoo import FIX_CASES  # registers the memory_capped_mlp builder

    case = next(c for c in FIX_CASES if c.name == "out_of_memory")
    cfg = parse_config({**case.config, "run_root": str(tmp_path), "diagnose": {"enabled": True}})
    cfg = cfg.with_values({"train.progress": "none", "train.epochs": 1})
    callback = DoctorCallback(cfg)
    run = run_training(cfg, callbacks=[callback])
    assert run.result.status == "oom"
    finding = callback.report.get("memory_pressure")
    assert finding.severity == "error"
    assert finding.config_change == {"train.batch_size": 64, "train.accumulate_steps": 2}
    # Recorded once (from the Trainer's status), and the failed step's inputs were looked at.
    assert len(callback.doctor.record.ooms) == 1
    assert callback.doctor.record.batches.rows == 128


def test_doctor_state_survives_a_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    doc = Doctor(model, opt, every_n_steps=2)
    for _ in range(3):
        for _ in range(10):
            loss = nn.functional.cross_entropy(
                model(torch.randn(32, 4) * 5), torch.randint(0, 2, (32,))
            )
            opt.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            opt.step()
        doc.end_epoch(train_loss=float(loss.detach()))
    path = tmp_path / "state.pt"
    torch.save(doc.state_dict(), path)
    again = Doctor(model, opt)
    again.load_state_dict(torch.load(path, weights_only=True))
    assert again.diagnose().kinds() == doc.diagnose().kinds()
    assert again.record.steps == 30 and len(again.record.epochs) == 3


class _Functional(nn.Module):
    """The same net with its activations called as functions (no activation modules)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.tanh(self.b(nn.functional.relu(self.a(x)))))


def _step_input_run(
    step_inputs: bool, *, epochs: int = 3, steps: int = 12, functional: bool = False
):
    """A loop without watch(): one forward per step, inputs on a scale the data rules notice."""
    torch.manual_seed(0)
    model = (
        _Functional()
        if functional
        else nn.Sequential(
            nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
        )
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    doc = Doctor(model, opt, every_n_steps=4, overhead_budget=None, step_inputs=step_inputs)
    gen = torch.Generator().manual_seed(1)
    hooked = []
    for _ in range(epochs):
        for _ in range(steps):
            x = torch.randn(24, 6, generator=gen) * torch.tensor([1.0, 1, 1, 1, 1, 300])
            y = torch.randint(0, 3, (24,), generator=gen)
            hooked.append(bool(model._forward_pre_hooks))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            doc.after_backward(loss, [x] if step_inputs else None)
            opt.step()
        doc.end_epoch(train_loss=1.0)
    return doc, hooked


def test_step_inputs_records_what_the_forward_hooks_record():
    # The Trainer hands each step's inputs to after_backward instead of the doctor hooking every
    # forward: the same gradient samples, activation counts and input statistics.
    hooked_doc, _ = _step_input_run(False)
    stepped_doc, _ = _step_input_run(True)
    a, b = hooked_doc.record, stepped_doc.record
    assert a.step_losses == b.step_losses
    assert a.grad_samples == b.grad_samples
    assert [e.activations for e in a.epochs] == [e.activations for e in b.epochs]
    assert a.batches == b.batches
    assert [f.kind for f in hooked_doc.diagnose().findings] == [
        f.kind for f in stepped_doc.diagnose().findings
    ]


def test_functional_activations_are_counted_with_step_inputs_too():
    """The Trainer's path (step_inputs) samples the same forwards under the function mode."""
    hooked_doc, _ = _step_input_run(False, functional=True)
    stepped_doc, hooked = _step_input_run(True, functional=True)
    a, b = hooked_doc.record, stepped_doc.record
    assert [[s.name for s in e.activations] for e in b.epochs] == [["relu()", "tanh()"]] * 3
    assert [e.activations for e in a.epochs] == [e.activations for e in b.epochs]
    assert not all(hooked)  # the unsampled forwards still run without the doctor's hooks


def test_step_inputs_hooks_only_the_sampled_forwards():
    _, always = _step_input_run(False)
    doc, hooked = _step_input_run(True)
    assert all(always)
    # Each epoch's first three forwards (64 activation rows at 24 a batch) and every 4th
    # step's; the other forwards run without the doctor's hooks.
    per_epoch = hooked[:12]
    assert per_epoch == [i < 3 or i % 4 == 0 for i in range(12)]
    assert hooked[12:24] == per_epoch
    doc.close()
    assert not doc.model._forward_pre_hooks and not doc.model._forward_hooks


def test_trainer_passes_its_inputs_to_the_doctor(healthy):
    _, callback, _ = healthy
    assert callback.doctor.step_inputs
    batches = callback.doctor.record.batches
    assert batches.rows >= 64 and batches.feature_sum is not None
    assert not callback.doctor.model._forward_pre_hooks  # closed after the fit
