"""Bad builder parameters are one-line ``ConfigError``s that name the field and the options."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.config import parse_config
from tunelab.data import DataBundle
from tunelab.errors import ConfigError
from tunelab.models import build_from_config, build_model


def _error(builder, params, shape=(4,), **kw):
    with pytest.raises(ConfigError) as info:
        build_model(builder, params, input_shape=shape, output_size=3, **kw)
    message = str(info.value)
    assert "\n" not in message
    return info.value, message


def test_unknown_parameter_lists_the_accepted_ones_and_suggests_the_closest():
    err, message = _error("mlp", {"dept": 3})
    assert err.field == "model.params.dept"
    assert "accepted parameters: depth, width, widths, activation, dropout, batch_norm" in message
    assert "did you mean 'depth'" in message


@pytest.mark.parametrize(
    ("builder", "params", "field", "fragment"),
    [
        ("mlp", {"activation": "swish"}, "activation", "expected one of 'relu'"),
        ("mlp", {"depth": -1}, "depth", "greater than or equal to 0"),
        ("mlp", {"dropout": 1.5}, "dropout", "less than 1"),
        ("mlp", {"width": "wide"}, "width", "valid integer"),
        ("mlp", {"width": True}, "width", "got a boolean"),
        ("mlp", {"widths": [8, 0]}, "widths", "widths[1] should be greater than or equal to 1"),
        ("mlp", {"widths": []}, "widths", "at least one"),
        ("lstm", {"pooling": "max"}, "pooling", "expected one of 'last' or 'mean'"),
        ("transformer", {"d_model": 30, "heads": 4}, "d_model", "divisible by heads"),
        ("custom", {"factory": "no_such_module_xyz:f"}, "factory", "cannot import"),
        ("custom", {"factory": "not-a-path"}, "factory", "package.module:function"),
        ("custom", {"factory": "subprocess:run"}, "factory", "not the standard library"),
    ],
)
def test_bad_value_names_the_parameter(builder, params, field, fragment):
    err, message = _error(builder, params)
    assert err.field == f"model.params.{field}"
    assert message.startswith(f"config error: model.params.{field}")
    assert fragment in message


@pytest.mark.parametrize(
    ("builder", "params", "shape", "fragment"),
    [
        ("cnn", {"kernel_size": 4}, (1, 8, 8), "must be odd"),
        ("resnet", {"blocks_per_stage": [1, 2]}, (1, 8, 8), "one count per stage (3 stages)"),
        ("resnet", {"blocks_per_stage": [1, 0, 1]}, (1, 8, 8), "blocks_per_stage[1]"),
    ],
)
def test_bad_image_builder_values_name_the_parameter(builder, params, shape, fragment):
    _, message = _error(builder, params, shape)
    assert fragment in message


def test_image_builder_on_tabular_data_says_what_to_use_instead():
    err, message = _error("cnn", {}, (30,))
    assert err.field == "model.builder"
    assert "needs image input" in message and "use mlp or transformer" in message


def test_missing_required_parameter_is_named():
    err, _ = _error("custom", {})
    assert err.field == "model.params.factory"


def test_unknown_builder_and_init_are_one_line_errors():
    _, message = _error("mpl", {})
    assert "unknown builder" in message and "did you mean 'mlp'" in message
    _, message = _error("mlp", {}, init="he")
    assert "model.init" in message and "kaiming" in message


def test_yaml_like_strings_are_coerced_to_the_declared_type():
    model = build_model("mlp", {"width": "16", "depth": 1.0}, input_shape=(4,), output_size=2)
    assert model.head.in_features == 16


def test_an_unresolved_search_space_is_refused_before_building():
    cfg = parse_config({"model": {"params": {"width": {"choice": [8, 16]}}}})
    X, y = np.zeros((6, 4), "float32"), np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ConfigError, match=r"model\.params\.width .* search space"):
        build_from_config(cfg.model, DataBundle.from_arrays(X, y, X, y))
