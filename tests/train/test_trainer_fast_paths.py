"""The trainer's cheap paths give exactly what the general ones give (bench/trainer_overhead.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tunelab.train import Callback, Trainer
from tunelab.train._checkpoint import atomic_write_bytes
from tunelab.train._metrics import (
    confusion,
    epoch_scores,
    packed_scores,
    scores_from_confusion,
    scores_from_counts,
)


class _General(Callback):
    """Switches the plain-step shortcut off, so every step takes the general path."""

    def on_fit_start(self, trainer):
        trainer.plan.plain = False


def _rows(history):
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]


def test_the_plain_step_matches_the_general_step_bit_for_bit(digits, make_mlp, quiet):
    plain_model, general_model = make_mlp(), make_mlp()
    plain = Trainer(quiet(epochs=3)).fit(plain_model, digits)
    general = Trainer(quiet(epochs=3), callbacks=[_General()]).fit(general_model, digits)
    assert _rows(plain.history) == _rows(general.history)
    pairs = zip(plain_model.state_dict().values(), general_model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_fit_with_clipping_takes_the_general_step(digits, make_mlp, quiet):
    seen = {}

    class Look(Callback):
        def on_fit_start(self, trainer):
            seen["plain"] = trainer.plan.plain

    Trainer(quiet(epochs=1, clip_grad_norm=1.0), callbacks=[Look()]).fit(make_mlp(), digits)
    assert seen["plain"] is False


def test_a_frozen_layer_counts_as_zero_in_the_gradient_norm_histograms(
    digits, make_mlp, quiet, tmp_path
):
    model = make_mlp()
    for p in model[0].parameters():
        p.requires_grad_(False)  # no gradient: the sampler's buffer path writes 0
    Trainer(quiet(epochs=1, tensorboard=True), run_dir=tmp_path).fit(model, digits)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    frozen = events.Histograms("grad_norm/0")[0].histogram_value
    trained = events.Histograms("grad_norm/2")[0].histogram_value
    assert frozen.num == 4 and frozen.max == 0
    assert trained.num == 4 and trained.min > 0


def test_scores_from_counts_are_the_same_for_int_and_float_counts():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 7, (500,), generator=g)
    pred = torch.where(torch.rand(500, generator=g) < 0.7, target, torch.randint(0, 7, (500,)))
    cm = confusion(pred, target, 8)  # class 7 in neither: left out of the means
    flat = cm.reshape(-1).tolist()
    assert scores_from_counts(flat, 8) == scores_from_counts([float(x) for x in flat], 8)
    assert scores_from_counts(flat, 8) == scores_from_confusion(cm)


def test_a_failed_byte_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_write_bytes(path, b"old")

    def fail(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_the_logs_hold_every_epoch_when_a_callback_raises(digits, make_mlp, quiet, tmp_path):
    # Rows and events are written when the files are flushed (at most once a second during a
    # fit): a fit that raises still writes the epochs it finished.
    class Crash(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                raise RuntimeError("a bug in a callback")

    cfg = quiet(epochs=4, tensorboard=True)
    with pytest.raises(RuntimeError, match="a bug"):
        Trainer(cfg, callbacks=[Crash()], run_dir=tmp_path).fit(make_mlp(), digits)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # epoch 2 raised in the user's callback, before the loggers ran
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/loss")] == [1]


def test_the_packed_read_of_a_gpu_gives_the_scores_of_the_cpu_read():
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(300, 6, generator=g), torch.randint(0, 6, (300,), generator=g)
    loss = torch.nn.functional.cross_entropy(logits, target)
    on_cpu = epoch_scores(logits, target, loss, "classification", 6)
    counts = confusion(logits.argmax(dim=-1), target, 6)
    assert packed_scores(loss, counts, 6) == on_cpu
