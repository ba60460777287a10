"""The experiment config: defaults, search spaces, and one-line errors for malformed input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tunelab.cli import main
from tunelab.config import (
    Choice,
    ConfigError,
    ExperimentConfig,
    Range,
    load_config,
    parse_config,
    parse_duration,
)


def test_empty_config_is_valid_and_every_section_has_defaults():
    cfg = parse_config({})
    assert isinstance(cfg, ExperimentConfig)
    for section in ("data", "model", "train", "diagnose", "tune", "compress", "deploy"):
        assert getattr(cfg, section) is not None
    assert cfg.train.optimizer == "adam"
    assert cfg.run_dir == Path("runs") / "experiment"


def test_search_spaces_are_parsed_into_typed_objects():
    cfg = parse_config(
        {
            "train": {
                "optimizer": {"choice": ["adam", "sgd"]},
                "lr": {"low": 1e-4, "high": 1e-1, "log": True},
                "batch_size": {"low": 32, "high": 128, "step": 32},
            },
            "model": {"params": {"width": {"choice": [32, 64]}, "depth": 2}},
        }
    )
    spaces = cfg.search_spaces()
    assert set(spaces) == {"train.optimizer", "train.lr", "train.batch_size", "model.params.width"}
    assert isinstance(spaces["train.optimizer"], Choice)
    assert spaces["train.lr"] == Range(low=1e-4, high=1e-1, log=True)
    assert spaces["train.batch_size"].integer
    assert spaces["train.batch_size"].values() == [32, 64, 96, 128]
    assert cfg.has_search_space()


def test_with_values_resolves_a_trial_config():
    cfg = parse_config({"train": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}})
    trial = cfg.with_values({"train.lr": 0.01, "model.params.width": 64})
    assert trial.train.lr == 0.01
    assert trial.model.params["width"] == 64
    assert not trial.has_search_space()


def test_resolved_config_round_trips_through_yaml():
    cfg = parse_config({"name": "x", "train": {"lr": {"choice": [0.1, 0.01]}}})
    again = parse_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_integer_range_inside_model_params_round_trips():
    cfg = parse_config({"model": {"params": {"width": {"low": 16, "high": 64, "step": 16}}}})
    cfg = cfg.with_values({"train.lr": 0.01})
    again = parse_config(yaml.safe_load(cfg.to_yaml()))
    assert again.search_spaces()["model.params.width"].low == 16
    assert again == cfg


def test_yaml_file_loads(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: digits\ntrain:\n  epochs: 3\n")
    assert load_config(path).train.epochs == 3


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrain:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"config error: {path}:")
    assert "YAML syntax error" in str(err.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_durations():
    assert parse_duration("90") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("1.5h") == 5400
    with pytest.raises(ValueError):
        parse_duration("ten minutes")


# (config, field the message must name, a fragment it must contain)

MALFORMED: list[tuple[object, str, str]] = [
    ({"train": {"optimizer": "adamm"}}, "train.optimizer", "did you mean 'adam'"),
    ({"train": {"optimiser": "adam"}}, "train.optimiser", "did you mean 'optimizer'"),
    ({"trian": {}}, "trian", "did you mean 'train'"),
    ({"train": {"lr": -1}}, "train.lr", "greater than 0"),
    ({"train": {"lr": 0}}, "train.lr", "greater than 0"),
    ({"train": {"lr": "fast"}}, "train.lr", "number"),
    ({"train": {"lr": [0.1]}}, "train.lr", "number"),
    ({"train": {"lr": {"low": 1, "high": 0.1}}}, "train.lr", "low must be below high"),
    ({"train": {"lr": {"low": 0, "high": 0.1, "log": True}}}, "train.lr", "greater than 0"),
    ({"train": {"lr": {"low": 0.1}}}, "train.lr", "needs both low and high"),
    ({"train": {"lr": {"choice": []}}}, "train.lr", "non-empty"),
    ({"train": {"lr": {"choice": [0.1, "x"]}}}, "train.lr", "number"),
    ({"train": {"lr": {"low": 1e-4, "high": 1e-1, "log": True, "step": 0.1}}}, "train.lr", "both"),
    ({"train": {"lr": {"low": 0.1, "high": 1, "step": -1}}}, "train.lr", "positive"),
    ({"train": {"optimizer": {"choice": ["adam", "sgdd"]}}}, "train.optimizer", "'sgd'"),
    ({"train": {"epochs": 0}}, "train.epochs", "greater than 0"),
    ({"train": {"epochs": 2.5}}, "train.epochs", "integer"),
    ({"train": {"epochs": "many"}}, "train.epochs", "integer"),
    ({"train": {"batch_size": -8}}, "train.batch_size", "greater than 0"),
    ({"train": {"momentum": 1.5}}, "train.momentum", "less than 1"),
    ({"train": {"weight_decay": -0.1}}, "train.weight_decay", "greater than or equal"),
    ({"train": {"loss": "crossentropy"}}, "train.loss", "cross_entropy"),
    ({"train": {"precision": "fp8"}}, "train.precision", "expected one of"),
    ({"train": {"device": "tpu"}}, "train.device", "expected one of"),
    ({"train": {"schedule": {"name": "cosin"}}}, "train.schedule.name", "did you mean 'cosine'"),
    ({"train": {"schedule": {"nme": "cosine"}}}, "train.schedule.nme", "did you mean 'name'"),
    (
        {"train": {"schedule": {"warmup_epochs": -1}}},
        "train.schedule.warmup_epochs",
        "greater than or equal to 0",
    ),
    ({"train": {"early_stopping": {"patience": 0}}}, "train.early_stopping.patience", "1"),
    ({"train": {"early_stopping": {"mode": "up"}}}, "train.early_stopping.mode", "min"),
    ({"train": {"clip_grad_norm": 1, "clip_grad_value": 1}}, "train", "not both"),
    ({"train": {"accumulate_steps": 0}}, "train.accumulate_steps", "greater than or equal"),
    ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing", "less than 1"),
    ({"train": "fast"}, "train", "valid dictionary"),
    ({"model": {"builder": "mpl"}}, "model.builder", "did you mean 'mlp'"),
    ({"model": {"builder": "vit"}}, "model.builder", "expected one of"),
    ({"model": {"init": "he"}}, "model.init", "kaiming"),
    ({"model": {"params": [1, 2]}}, "model.params", "dictionary"),
    ({"model": {"unfreeze_after": -1}}, "model.unfreeze_after", "greater than or equal"),
    ({"data": {"source": "excel"}}, "data.source", "csv"),
    ({"data": {"source": "csv"}}, "data", "needs data.path"),
    ({"data": {"dataset": "mnist"}}, "data.dataset", "digits"),
    ({"data": {"dataset": "digit"}}, "data.dataset", "did you mean 'digits'"),
    ({"data": {"scale": "robust"}}, "data.scale", "standard"),
    ({"data": {"split": {"val": 0.5, "test": 0.5}}}, "data.split", "leave training data"),
    ({"data": {"split": {"val": -0.1}}}, "data.split.val", "greater than or equal"),
    ({"data": {"split": {"vall": 0.1}}}, "data.split.vall", "did you mean 'val'"),
    ({"data": {"clean": {"missing": "impute"}}}, "data.clean.missing", "median"),
    ({"data": {"clean": {"outliers": "zcore"}}}, "data.clean.outliers", "did you mean 'zscore'"),
    ({"data": {"clean": {"zscore_threshold": 0}}}, "data.clean.zscore_threshold", "greater"),
    ({"data": {"augment": {"rotate_degrees": 400}}}, "data.augment.rotate_degrees", "180"),
    ({"data": {"image_size": [8]}}, "data", "[height, width]"),
    ({"data": {"synthetic": {"n_classes": 1}}}, "data.synthetic.n_classes", "2"),
    ({"tune": {"sampler": "bayes"}}, "tune.sampler", "tpe"),
    ({"tune": {"pruner": "asha2"}}, "tune.pruner", "did you mean 'asha'"),
    ({"tune": {"trials": 0}}, "tune.trials", "greater than 0"),
    ({"tune": {"timeout": "10 minutes"}}, "tune.timeout", "duration"),
    ({"tune": {"cv": {"folds": 1}}}, "tune.cv.folds", "at least 2"),
    ({"tune": {"workers": 0}}, "tune.workers", "greater than or equal"),
    (
        {"tune": {"objectives": [{"metric": "val_accuracy"}]}},
        "tune.objectives.0.direction",
        "missing",
    ),
    ({"tune": {"objectives": [{"metric": "x", "direction": "up"}]}}, "direction", "maximize"),
    (
        {"compress": {"methods": ["prune", "quantise"]}},
        "compress.methods",
        "did you mean 'quantize'",
    ),
    ({"compress": {"sparsity": 1.0}}, "compress.sparsity", "less than 1"),
    ({"deploy": {"port": 70000}}, "deploy.port", "65535"),
    ({"deploy": {"formats": ["onnx", "onnx"]}}, "deploy", "duplicates"),
    ({"deploy": {"model": "fp16"}}, "deploy.model", "int8"),
    ({"diagnose": {"every_n_steps": 0}}, "diagnose.every_n_steps", "greater than or equal"),
    ({"name": "has space"}, "name", "pattern"),
    ({"seed": "abc"}, "seed", "integer"),
    ([1, 2, 3], "", "mapping of sections"),
    ("just a string", "", "mapping of sections"),
]


@pytest.mark.parametrize(("data", "field", "fragment"), MALFORMED)
def test_malformed_config_gives_one_line_naming_the_field(data, field, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("config error: ")
    assert field in message
    assert fragment in message


def test_at_least_fifty_malformed_configs_are_covered():
    assert len(MALFORMED) >= 50


@pytest.mark.parametrize(("data", "field", "fragment"), MALFORMED)
def test_cli_validate_prints_one_line_and_exits_2(tmp_path, capsys, data, field, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert field in lines[0] and "Traceback" not in err


def test_cli_process_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  optimizer: adamm\n")
    result = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "config error: train.optimizer = 'adamm' — expected one of adam, adamw, sgd, rmsprop, "
        "adagrad (did you mean 'adam'?)"
    ]


def test_cli_validate_prints_the_resolved_config(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\ntrain:\n  lr: {low: 0.0001, high: 0.1, log: true}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    *body, last = result.stdout.strip().splitlines()
    assert last.startswith("OK: ") and "1 tuned field(s): train.lr" in last
    resolved = yaml.safe_load("\n".join(body))
    assert resolved["train"]["optimizer"] == "adam"
    assert resolved["train"]["lr"] == {"low": 0.0001, "high": 0.1, "log": True}


_SECTION_KEYS = st.sampled_from(["data", "model", "train", "tune", "compress", "deploy"])
_JUNK = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=120, deadline=None)
@given(section=_SECTION_KEYS, key=st.text(min_size=1, max_size=12), value=_JUNK)
def test_random_junk_is_either_valid_or_one_config_error_line(section, key, value):
    try:
        parse_config({section: {key: value}})
    except ConfigError as err:
        assert "\n" not in str(err)
        assert str(err).startswith("config error: ")
