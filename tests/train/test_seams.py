"""The train stage's seams: the one sick-trial policy, FitState, BackboneFinetuning, the LR
finder on the Trainer's own step, and the one gradient-norm sampler and TensorBoard writer."""

from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tunelab.diagnose import Finding
from tunelab.train import (
    BackboneFinetuning,
    Callback,
    EventFile,
    FitState,
    GradientNormSampler,
    SickTrialPolicy,
    Trainer,
    find_lr,
)
from tunelab.train._resume import trainer_state

# ---- SickTrialPolicy ---------------------------------------------------------------------------


def test_policy_calls_a_nan_or_inf_step_loss_sick_with_status_nan():
    policy = SickTrialPolicy()
    for bad in (math.nan, math.inf, -math.inf):
        s = policy.judge_step(40, bad, epoch=3)
        assert (s.kind, s.status, s.epoch, s.step) == ("exploding_gradients", "nan", 3, 40)
        assert "train loss became" in s.evidence and "in epoch 3" in s.evidence
    assert policy.judge_step(40, 2.3) is None
    assert policy.due(40) and not policy.due(41)


def test_policy_judges_an_epoch_nan_an_exploded_val_loss_and_divergence():
    policy = SickTrialPolicy()
    nan = policy.judge_epoch(2, {"train_loss": 0.5, "val_loss": math.nan})
    assert (nan.kind, nan.status, nan.figures) == (
        "exploding_gradients",
        "nan",
        {"val_loss": "nan"},
    )
    exploded = policy.judge_epoch(2, {"train_loss": 0.5, "val_loss": 2e5})
    assert (exploded.kind, exploded.status) == ("exploding_gradients", "diverged")
    diverged = policy.judge_epoch(4, {"train_loss": 2.1}, best_loss=0.5, step=40)
    assert (diverged.kind, diverged.status, diverged.step) == ("diverging_loss", "diverged", 40)
    assert "2.1" in diverged.evidence


def test_policy_leaves_a_healthy_noisy_loss_alone():
    policy = SickTrialPolicy()
    g = torch.Generator().manual_seed(0)
    best = math.inf
    # A falling loss with 30% noise: every epoch is judged healthy, every step too.
    for epoch in range(1, 30):
        loss = 2.0 / epoch * (1 + 0.3 * float(torch.rand(1, generator=g)))
        assert (
            policy.judge_epoch(epoch, {"train_loss": loss, "val_loss": loss}, best_loss=best)
            is None
        )
        assert policy.judge_step(epoch * 20, loss, epoch=epoch) is None
        best = min(best, loss)
    assert policy.judge_curve(2.0, 0.5, 0.6) is None
    assert policy.judge_curve(2.0, 0.5, 25.0) == "error"


def test_a_sickness_becomes_one_error_finding():
    s = SickTrialPolicy().judge_epoch(3, {"train_loss": 9.0}, best_loss=1.0, step=30)
    f = Finding.from_sickness(s)
    assert (f.kind, f.severity, f.evidence) == ("diverging_loss", "error", s.evidence)
    assert f.first_seen == {"epoch": 3, "step": 30} and f.remedy


def test_the_trainers_guard_ends_a_diverging_fit_with_its_verdict(digits, make_mlp, quiet):
    class Blowup(Callback):  # multiplies the weights after epoch 2: the loss shoots up
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                with torch.no_grad():
                    for p in trainer.model.parameters():
                        p.mul_(40.0)

    result = Trainer(quiet(epochs=6, lr=1e-4), callbacks=[Blowup()]).fit(make_mlp(), digits)
    assert result.status == "diverged" and result.epochs_run == 3
    assert result.sickness.kind == "diverging_loss" and result.sickness.epoch == 3
    assert result.reason.startswith(result.sickness.evidence)
    off = Trainer(quiet(epochs=4, lr=1e-4), callbacks=[Blowup()], health=None)
    assert off.fit(make_mlp(), digits).status == "completed"


def test_the_step_guard_looks_every_check_every_steps(digits, make_mlp, quiet):
    class Poison(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            return self.inner(x) * float("nan") if self.calls > 3 else self.inner(x)

    # 10 steps per epoch; with a look every 5 steps the fit ends at step 5, mid-epoch 1.
    result = Trainer(quiet(epochs=3), health=SickTrialPolicy(check_every=5)).fit(
        Poison(make_mlp()), digits
    )
    assert result.status == "nan" and result.sickness.step == 5
    assert "train loss became nan in epoch 1" in result.reason


# ---- FitState ----------------------------------------------------------------------------------


def test_fit_state_round_trips_through_its_state_dict(digits, make_mlp, quiet):
    trainer = Trainer(quiet(epochs=2, schedule={"name": "cosine"}))
    trainer.fit(make_mlp(), digits)
    saved = trainer.state.state_dict()
    other = Trainer(quiet(epochs=2, schedule={"name": "cosine"}))
    other._setup(make_mlp(seed=3), digits)
    other._reset_globals()
    assert isinstance(other.state, FitState) and other.state.epoch == 0
    other.state.load_state_dict(saved)
    again = other.state.state_dict()
    assert (other.epoch, other.global_step) == (2, 20)
    assert other.history == trainer.history and other.best_metrics == trainer.best_metrics
    assert again["optimizer"]["param_groups"] == saved["optimizer"]["param_groups"]
    assert again["schedule"] == saved["schedule"]
    assert again["health"] == saved["health"] and math.isfinite(again["health"]["best_train_loss"])
    assert torch.equal(again["rng"]["generator"], saved["rng"]["generator"])


def test_the_checkpoint_is_the_fit_states_state_dict(digits, make_mlp, quiet, tmp_path):
    trainer = Trainer(quiet(epochs=1), run_dir=tmp_path)
    trainer.fit(make_mlp(), digits)
    state = trainer_state(trainer)
    assert set(trainer.state.state_dict()) <= set(state)
    assert {"model", "callbacks", "finished", "format"} <= set(state)
    # the public attributes callbacks use read through to the state
    assert trainer.optimizer is trainer.state.optimizer
    assert trainer.global_step == trainer.state.global_step == 10


# ---- BackboneFinetuning ------------------------------------------------------------------------


def test_the_trainer_adds_backbone_finetuning_only_for_transfer_models(digits, make_mlp, quiet):
    from tunelab.models._transfer import _SETTINGS_ATTR, TransferSettings

    plain = Trainer(quiet(epochs=1))
    plain.fit(make_mlp(), digits)
    assert not any(isinstance(cb, BackboneFinetuning) for cb in plain._cbs.callbacks)
    model = make_mlp()
    setattr(model, _SETTINGS_ATTR, TransferSettings())
    transfer = Trainer(quiet(epochs=1))
    transfer.fit(model, digits)
    assert isinstance(transfer._cbs.callbacks[0], BackboneFinetuning)


# ---- the LR finder on the Trainer's step -------------------------------------------------------


def test_lr_finder_honours_accumulation_and_clipping(digits, make_mlp, quiet, monkeypatch):
    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            return self.inner(x)

    clips = []
    real = torch.nn.utils.clip_grad_value_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_value_", lambda p, v: clips.append(v) or real(p, v)
    )
    single = Counting(make_mlp())
    find_lr(single, digits, quiet(batch_size=32), steps=10, end_lr=1e-3)
    accumulated = Counting(make_mlp())
    result = find_lr(
        accumulated,
        digits,
        quiet(batch_size=32, accumulate_steps=3, clip_grad_value=0.5),
        steps=10,
        end_lr=1e-3,
    )
    assert single.calls == 10 and accumulated.calls == 30  # 3 micro-batches per optimiser step
    assert clips == [0.5] * 10 and len(result.lrs) == 10


def test_lr_finder_stops_where_the_policy_says(digits, make_mlp, quiet):
    result = find_lr(make_mlp(), digits, quiet(optimizer="sgd"), steps=200, end_lr=1e4)
    assert result.stopped_early
    last, best = result.losses[-1], min(result.losses[:-1])
    assert not math.isfinite(last) or last > SickTrialPolicy().divergence_factor * best


# ---- one sampler, one writer -------------------------------------------------------------------


def test_one_gradient_norm_sampler_for_the_logs_and_the_doctor(digits, quiet, tmp_path):
    from tunelab.diagnose._probes import GradProbe

    model = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 10)
    )
    sampler = GradientNormSampler(model)
    assert sampler.names == ["0", "3"]  # weight matrices only: no bias, no norm scale
    assert [n for n, _ in GradProbe(model).layers()] == sampler.names
    Trainer(quiet(epochs=1, tensorboard=True), run_dir=tmp_path).fit(model, digits)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    assert set(events.Tags()["histograms"]) == {f"grad_norm/{n}" for n in sampler.names}


def test_sampler_writes_zero_for_a_layer_without_gradient():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    model(torch.ones(5, 3)).sum().backward()
    row = torch.full((2,), -1.0)
    GradientNormSampler(model).sample_into(row)
    assert row[0] == 0 and row[1] == pytest.approx(float(model[1].weight.grad.norm()))


def test_event_file_writes_scalars_and_text_tensorboard_reads(tmp_path):
    writer = EventFile(tmp_path, suffix=".doctor").open()
    writer.add_scalars({"doctor/grad_rms/0": 0.5, "doctor/dead_fraction/1": 0.25}, 3)
    writer.add_text("doctor/summary", "all fine", 3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert events.Scalars("doctor/grad_rms/0")[0].value == 0.5
    assert events.Scalars("doctor/dead_fraction/1")[0].step == 3
    assert "doctor/summary" in events.Tags()["tensors"]
