"""What a fit records: metrics.jsonl, TensorBoard events, progress output; transfer learning."""

from __future__ import annotations

import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tunelab.config import ModelConfig
from tunelab.models import build_from_config
from tunelab.train import Trainer


def test_metrics_jsonl_has_one_line_per_epoch(digits, make_mlp, quiet, tmp_path):
    result = Trainer(quiet(epochs=3), run_dir=tmp_path).fit(make_mlp(), digits)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_accuracy"] == result.history[-1]["val_accuracy"]


def test_tensorboard_has_scalars_lr_and_layer_gradient_norm_histograms(
    digits, make_mlp, quiet, tmp_path
):
    Trainer(quiet(epochs=2, tensorboard=True), run_dir=tmp_path).fit(make_mlp(), digits)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/loss", "val/accuracy", "val/f1_macro", "lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val/loss")] == [1, 2]
    assert set(tags["histograms"]) == {"grad_norm/0", "grad_norm/2"}  # the two Linear layers
    hist = events.Histograms("grad_norm/0")[0].histogram_value
    assert hist.num == 4 and hist.min > 0  # 4 of the 10 steps of the epoch are sampled


def test_a_resumed_run_shows_each_epoch_once_in_tensorboard(digits, make_mlp, quiet, tmp_path):
    # The first attempt logs epochs 1-3 but its checkpoint holds epoch 2 (as after a crash):
    # the resumed attempt's purge marker makes TensorBoard drop the stale epoch 3.
    Trainer(quiet(epochs=2, tensorboard=True), run_dir=tmp_path).fit(make_mlp(), digits)
    from tensorboard.compat.proto.summary_pb2 import Summary

    from tunelab.train import EventFile

    stale = EventFile(tmp_path / "tensorboard").open()
    stale.add_summary(Summary(value=[Summary.Value(tag="val/loss", simple_value=99.0)]), 3)
    stale.close()
    Trainer(quiet(epochs=4, tensorboard=True), run_dir=tmp_path).fit(
        make_mlp(), digits, resume=True
    )
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = events.Scalars("val/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4]
    assert all(e.value < 99.0 for e in losses)


def test_progress_none_prints_nothing_and_plain_prints_a_line_per_epoch(
    digits, make_mlp, quiet, capsys
):
    Trainer(quiet(epochs=2, progress="none")).fit(make_mlp(), digits)
    assert capsys.readouterr().out == ""
    Trainer(quiet(epochs=2, progress="plain")).fit(make_mlp(), digits)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch 1/2  train_loss")
    assert lines[1].startswith("epoch 2/2") and "val_accuracy" in lines[1]
    assert lines[2] == "completed: ran all 2 epochs"


def test_auto_progress_is_plain_when_stdout_is_not_a_tty(digits, make_mlp, quiet, capsys):
    Trainer(quiet(epochs=1, progress="auto")).fit(make_mlp(), digits)
    assert capsys.readouterr().out.startswith("epoch 1/1")


def test_discriminative_lr_and_unfreeze_after_for_a_pretrained_model(digits, quiet, tmp_path):
    from tunelab.models import save_model

    base, spec = build_from_config(ModelConfig(builder="mlp", params={"width": 16}), digits)
    save_model(tmp_path / "pre", base, spec)
    cfg = ModelConfig(
        checkpoint=str(tmp_path / "pre"),
        freeze_backbone=True,
        unfreeze_after=2,
        backbone_lr_mult=0.1,
    )
    model, _ = build_from_config(cfg, digits)
    backbone = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    start = [p.detach().clone() for p in backbone]
    seen = {}

    from tunelab.train import Callback

    class Watch(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen[epoch] = all(torch.equal(a, b) for a, b in zip(start, backbone, strict=True))
            lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
            seen["lrs"] = lrs

    Trainer(quiet(epochs=3, lr=1e-2), callbacks=[Watch()]).fit(model, digits)
    assert seen[1] and seen[2]  # frozen for the first two epochs
    assert not seen[3]  # then trained
    assert seen["lrs"]["backbone"] == seen["lrs"]["head"] * 0.1


def test_event_records_carry_the_checksums_tensorboard_verifies(tmp_path):
    import struct

    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    from tunelab.train import EventFile

    events = EventFile(tmp_path).open()
    for step in range(3):
        events.add_summary(Summary(value=[Summary.Value(tag="x", simple_value=step)]), step)
    events.close()
    data = next(tmp_path.glob("events.out.tfevents.*")).read_bytes()
    offset, records = 0, 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8 : offset + 12])[0] == masked_crc32c(header)
        body = data[offset + 12 : offset + 12 + length]
        footer = data[offset + 12 + length : offset + 16 + length]
        assert struct.unpack("<I", footer)[0] == masked_crc32c(body)
        offset += 16 + length
        records += 1
    assert records == 4  # the file-version event and three summaries


def test_event_files_of_one_second_sort_in_the_order_they_were_opened(tmp_path, monkeypatch):
    import itertools

    import tunelab.train._loggers as loggers
    from tunelab.train import EventFile

    monkeypatch.setattr(loggers, "_EVENT_FILES", itertools.count(9))  # 9, then 10
    monkeypatch.setattr(loggers.time, "time", lambda: 1_700_000_000.0)
    for _ in range(2):
        EventFile(tmp_path).open().close()
    counters = [p.name.rsplit(".", 1)[-1] for p in sorted(tmp_path.iterdir())]
    assert [int(c) for c in counters] == [9, 10]
