"""Issue 16's config traps: YAML 1.2 floats, space syntax and bounds, strict types, files, paths."""

from __future__ import annotations

import os

import pytest

from tunelab.config import ConfigError, Range, load_config, parse_config


def _load(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _error(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message and message.startswith("config error: ")
    return message


# ---- 4: search spaces --------------------------------------------------------------------


def test_exponent_floats_without_a_dot_are_numbers_in_fields_and_ranges(tmp_path):
    cfg = _load(
        tmp_path,
        "train:\n  lr: {low: 1e-4, high: 3e-2, log: true}\n  weight_decay: 5e-5\n"
        "  clip_grad_norm: 1E1\n",
    )
    assert cfg.train.lr == Range(low=1e-4, high=3e-2, log=True)
    assert cfg.train.weight_decay == 5e-5
    assert cfg.train.clip_grad_norm == 10.0
    # A quoted "1e-4" is text, and the message says what to do (no unfilled placeholder).
    message = _error(tmp_path, 'train:\n  lr: {low: "1e-4", high: 0.1}\n')
    assert "{bound" not in message and "write it without quotes" in message


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("{min: 0.001, max: 0.1}", ["min -> low", "max -> high", "{low: L, high: H}"]),
        ("{choices: [0.1, 0.01]}", ["choices -> choice", "{choice: [v1, v2, ...]}"]),
        ("[0.1, 0.01]", ["bare list", "{choice: [0.1, 0.01]}"]),
        ("{low: 0.1, high: 1, scale: log}", ["scale", "log: true"]),
    ],
)
def test_a_misspelt_space_names_the_space_syntax(tmp_path, value, fragments):
    message = _error(tmp_path, f"train:\n  lr: {value}\n")
    assert "train.lr" in message
    for fragment in fragments:
        assert fragment in message


def test_a_misspelt_space_in_model_params_names_the_param_and_the_syntax(tmp_path):
    message = _error(tmp_path, "model:\n  params:\n    width: {min: 16, max: 64}\n")
    assert message.startswith("config error: model.params.width = ")
    assert "min -> low" in message
    message = _error(tmp_path, "model:\n  params:\n    width: {low: 64, high: 16}\n")
    assert "model.params.width" in message and "below high" in message


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"momentum": {"low": 0.5, "high": 1.5}}, "range high 1.5"),
        ({"lr": {"low": -1, "high": 0.1}}, "range low -1"),
        ({"label_smoothing": {"choice": [0.1, 1.0]}}, "choice 1.0"),
        ({"batch_size": {"low": 0, "high": 64}}, "range low 0"),
        ({"batch_size": {"low": 16, "high": 64, "step": 2.5}}, "whole-number step"),
        ({"epochs": {"choice": [10, True]}}, "choice True"),
    ],
)
def test_space_bounds_are_checked_against_the_field_constraints(section, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config({"train": section})
    field = f"train.{next(iter(section))}"
    assert str(err.value).startswith(f"config error: {field} = ")
    assert fragment in str(err.value)


# ---- 5: tune.metric follows train.monitor -------------------------------------------------


def test_tune_metric_inherits_train_monitor_unless_set():
    assert parse_config({"train": {"monitor": "val_f1_macro"}}).tune.metric == "val_f1_macro"
    explicit = parse_config({"train": {"monitor": "val_f1_macro"}, "tune": {"metric": "val_loss"}})
    assert explicit.tune.metric == "val_loss"
    assert parse_config({}).tune.metric == "val_loss"
    cfg = parse_config({"train": {"monitor": "val_accuracy", "lr": {"low": 1e-3, "high": 1e-1}}})
    assert cfg.with_values({"train.lr": 0.01}).tune.metric == "val_accuracy"


# ---- 8: data.path relative to the config file --------------------------------------------


def test_data_path_is_resolved_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "t.csv").write_text("a,label\n1,x\n")
    monkeypatch.chdir(tmp_path)
    cfg = _load(tmp_path, "data:\n  source: csv\n  path: data/t.csv\n", "proj/exp.yaml")
    assert cfg.data.path == os.path.join(tmp_path, "proj", "data", "t.csv")


def test_a_path_that_exists_only_from_the_cwd_keeps_working(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("a,label\n1,x\n")
    monkeypatch.chdir(tmp_path)
    cfg = _load(tmp_path, "data:\n  source: csv\n  path: t.csv\n", "configs/exp.yaml")
    assert cfg.data.path == str(tmp_path / "t.csv")


def test_absolute_paths_and_dicts_are_left_alone(tmp_path):
    cfg = _load(tmp_path, f"data:\n  source: csv\n  path: {tmp_path / 'x.csv'}\n")
    assert cfg.data.path == str(tmp_path / "x.csv")
    assert parse_config({"data": {"source": "csv", "path": "rel.csv"}}).data.path == "rel.csv"


# ---- 9: no traceback, no silent acceptance ------------------------------------------------


def test_a_non_utf8_file_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: x\ndata:\n  label: caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"config error: {path}:3: the file is not UTF-8")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_an_empty_file_is_an_error_not_all_defaults(tmp_path, text):
    assert "is empty" in _error(tmp_path, text)


def test_an_explicit_empty_mapping_means_all_defaults(tmp_path):
    assert _load(tmp_path, "{}\n").train.epochs == 20


def test_a_duplicated_key_names_the_key_and_both_lines(tmp_path):
    message = _error(tmp_path, "train:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n")
    assert "'train.epochs' appears twice" in message and "lines 2 and 4" in message


@pytest.mark.parametrize("seed", [-1, 2**32, True, "7"])
def test_seed_must_be_an_unsigned_32_bit_integer(seed):
    with pytest.raises(ConfigError, match=r"^config error: seed = "):
        parse_config({"seed": seed})
    assert parse_config({"seed": 2**32 - 1}).seed == 2**32 - 1


@pytest.mark.parametrize(
    ("section", "value", "fragment"),
    [
        ("epochs", True, "got the boolean true"),
        ("epochs", "10", "write it without quotes"),
        ("epochs", 10.0, "expected an integer"),
        ("lr", "0.01", "write it without quotes"),
        ("lr", float("inf"), "finite"),
        ("tensorboard", 1, "expected true or false"),
        ("tensorboard", "yes", "expected true or false"),
        ("monitor", 3, "expected a string"),
    ],
)
def test_strict_types_no_silent_coercion(section, value, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config({"train": {section: value}})
    assert str(err.value).startswith(f"config error: train.{section} = ")
    assert fragment in str(err.value)


def test_what_yaml_and_json_cannot_spell_is_still_accepted():
    cfg = parse_config({"train": {"betas": [0.8, 0.99], "lr": 1}, "tune": {"timeout": 90}})
    assert cfg.train.betas == (0.8, 0.99) and cfg.train.lr == 1
    assert parse_config({"tune": {"timeout": "10m"}}).tune.timeout == "10m"
    with pytest.raises(ConfigError, match=r"tune\.timeout"):
        parse_config({"tune": {"timeout": True}})


def test_resolved_yaml_reads_back_the_same_even_for_float_like_text(tmp_path):
    cfg = parse_config({"name": "1e5", "train": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}})
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_numpy_scalars_are_the_numbers_they_are_but_numpy_booleans_stay_booleans():
    np = pytest.importorskip("numpy")
    cfg = parse_config(
        {
            "train": {"batch_size": np.int64(32), "lr": np.float32(0.5)},
            "data": {"image_size": (8, 8)},
        }
    )
    assert cfg.train.batch_size == 32 and type(cfg.train.batch_size) is int
    with pytest.raises(ConfigError, match="boolean"):
        parse_config({"train": {"batch_size": np.bool_(True)}})
