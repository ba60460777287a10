"""Every builder: output shape for the inputs it accepts, parameter counts, the ``head`` rule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tunelab.config import allowed_names, parse_config
from tunelab.errors import ConfigError
from tunelab.models import (
    HeadedModel,
    build_model,
    builder_names,
    builder_parameters,
    count_parameters,
    register_builder,
)

SHAPES = [
    ("mlp", {}, (30,)),
    ("mlp", {"widths": [16, 8], "batch_norm": True, "dropout": 0.2, "activation": "gelu"}, (5,)),
    ("mlp", {"depth": 0}, (1, 8, 8)),
    ("cnn", {}, (1, 8, 8)),
    ("cnn", {"channels": [4, 8, 8, 8], "pooling": "avg", "hidden": 0}, (3, 32, 32)),
    ("cnn", {"channels": [4], "pooling": "none", "kernel_size": 5}, (8, 8)),
    ("cnn", {"channels": [4, 4]}, (3, 1, 20)),
    ("resnet", {"blocks_per_stage": 1, "width": 4}, (1, 8, 8)),
    ("resnet", {"widths": [4, 8], "blocks_per_stage": [1, 2], "batch_norm": False}, (3, 16, 16)),
    ("lstm", {"hidden": 8}, (12, 3)),
    ("lstm", {"hidden": 8, "bidirectional": True, "layers": 2, "dropout": 0.1}, (10,)),
    ("gru", {"hidden": 8, "pooling": "mean"}, (12, 3)),
    ("gru", {"hidden": 8}, (1, 8, 8)),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1, "ff": 32}, (7,)),
    ("transformer", {"d_model": 16, "heads": 4, "pooling": "mean"}, (12, 3)),
    ("transformer", {"d_model": 8, "heads": 2, "layers": 1}, (1, 8, 8)),
]


@pytest.mark.parametrize(("builder", "params", "shape"), SHAPES)
def test_builder_maps_a_batch_to_one_output_row_per_sample(builder, params, shape):
    model = build_model(builder, params, input_shape=shape, output_size=5)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()
    # The transfer-learning convention: the last layer is ``head`` and produces the output.
    assert isinstance(model, HeadedModel)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 5


@pytest.mark.parametrize(("builder", "params", "shape"), SHAPES)
def test_every_parameter_gets_a_gradient(builder, params, shape):
    model = build_model(builder, params, input_shape=shape, output_size=2)
    model(torch.randn(4, *shape)).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused


def test_mlp_parameter_count_matches_the_layer_formula():
    model = build_model("mlp", {"depth": 2, "width": 16}, input_shape=(10,), output_size=3)
    assert count_parameters(model) == (10 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)
    bn = build_model("mlp", {"widths": [16], "batch_norm": True}, input_shape=(10,), output_size=3)
    # BatchNorm replaces the linear bias with its own scale and shift.
    assert count_parameters(bn) == 10 * 16 + 2 * 16 + 16 * 3 + 3


def test_mlp_widths_override_depth_and_width():
    model = build_model("mlp", {"widths": [32, 8], "width": 99}, input_shape=(4,), output_size=2)
    linear = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear == [32, 8, 2]


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("relu", nn.ReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("gelu", nn.GELU),
        ("tanh", nn.Tanh),
        ("sigmoid", nn.Sigmoid),
    ],
)
def test_mlp_uses_the_named_activation(name, cls):
    model = build_model("mlp", {"activation": name, "depth": 2}, input_shape=(4,), output_size=2)
    assert sum(isinstance(m, cls) for m in model.modules()) == 2


def test_cnn_on_digit_sized_images_halves_each_block_and_keeps_the_spatial_layout():
    model = build_model(
        "cnn", {"channels": [8, 16], "hidden": 0}, input_shape=(1, 8, 8), output_size=10
    )
    # 8x8 -> 4x4 -> 2x2, flattened: 16 * 2 * 2 features reach the head.
    assert model.head.in_features == 16 * 2 * 2
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2


def test_cnn_on_large_images_keeps_the_head_small():
    model = build_model(
        "cnn", {"channels": [4], "hidden": 0}, input_shape=(3, 64, 64), output_size=2
    )
    assert model.head.in_features == 4 * 4 * 4


def test_cnn_avg_pooling_and_batch_norm_switches():
    model = build_model(
        "cnn", {"pooling": "avg", "batch_norm": False}, input_shape=(1, 8, 8), output_size=2
    )
    kinds = {type(m) for m in model.modules()}
    assert nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds and nn.BatchNorm2d not in kinds


def test_resnet_20_has_the_published_size():
    # He et al. (2016), CIFAR ResNet-20: 3 stages of 3 basic blocks, widths 16/32/64, ~0.27M.
    model = build_model(
        "resnet",
        {"stages": 3, "blocks_per_stage": 3, "width": 16},
        input_shape=(3, 32, 32),
        output_size=10,
    )
    assert 0.26e6 < count_parameters(model) < 0.28e6
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_blocks_add_the_shortcut():
    model = build_model(
        "resnet", {"widths": [4], "blocks_per_stage": 1}, input_shape=(1, 6, 6), output_size=2
    )
    block = model.stages[0][0]
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.zero_()
    block.eval()
    # With the residual branch zeroed, the block is relu(shortcut(x)) = relu(x).
    assert torch.allclose(block(x), torch.relu(x))


def test_bidirectional_lstm_reads_both_directions_final_states():
    model = build_model(
        "lstm", {"hidden": 6, "bidirectional": True}, input_shape=(9, 2), output_size=1
    )
    assert model.head.in_features == 12
    x = torch.randn(3, 9, 2)
    outputs, _ = model.rnn(x)
    expected = torch.cat([outputs[:, -1, :6], outputs[:, 0, 6:]], dim=-1)
    assert torch.allclose(model.features(x), expected, atol=1e-6)


def test_gru_mean_pooling_averages_the_time_steps():
    model = build_model("gru", {"hidden": 5, "pooling": "mean"}, input_shape=(7, 3), output_size=1)
    x = torch.randn(2, 7, 3)
    outputs, _ = model.rnn(x)
    assert torch.allclose(model.features(x), outputs.mean(dim=1), atol=1e-6)


def test_transformer_treats_tabular_features_as_tokens():
    model = build_model(
        "transformer", {"d_model": 8, "heads": 2, "layers": 1}, input_shape=(6,), output_size=3
    )
    assert model.position.shape == (1, 6 + 1, 8)  # one token per feature plus [CLS]
    assert model(torch.randn(4, 6)).shape == (4, 3)


def test_transformer_positions_make_token_order_matter():
    model = build_model(
        "transformer",
        {"d_model": 8, "heads": 2, "layers": 1, "dropout": 0.0},
        input_shape=(5, 2),
        output_size=2,
    ).eval()
    x = torch.randn(1, 5, 2)
    assert not torch.allclose(model(x), model(x.flip(1)))


def test_custom_factory_gets_the_data_shapes(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(input_shape, output_size, hidden=4):\n"
        "    net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], hidden), nn.ReLU())\n"
        "    net.add_module('head', nn.Linear(hidden, output_size))\n"
        "    return net\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model(
        "custom", {"factory": "my_nets:tiny", "hidden": 7}, input_shape=(3,), output_size=2
    )
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [7, 2]
    with pytest.raises(
        ConfigError,
        match=r"model\.params\.width .*accepted parameters: "
        r"factory, hidden",
    ):
        build_model(
            "custom", {"factory": "my_nets:tiny", "width": 3}, input_shape=(3,), output_size=2
        )


def test_register_builder_makes_the_name_valid_in_configs():
    @register_builder("test_linear_probe")
    def probe(*, input_shape, output_size, bias: bool = True):
        net = nn.Sequential(nn.Flatten())
        net.add_module("head", nn.Linear(math.prod(input_shape), output_size, bias=bias))
        return net

    assert "test_linear_probe" in builder_names()
    assert "test_linear_probe" in allowed_names("model.builder")
    cfg = parse_config({"model": {"builder": "test_linear_probe", "params": {"bias": False}}})
    model = build_model(cfg.model.builder, cfg.model.params, input_shape=(2, 3), output_size=4)
    assert model.head.bias is None
    assert builder_parameters("test_linear_probe") == {"bias": True}


def test_a_builder_registered_again_under_its_name_is_checked_by_its_new_signature():
    # The parameter schema is cached per builder function, never per name.
    @register_builder("test_reregistered")
    def first(*, input_shape, output_size, width: int = 4):
        return nn.Linear(math.prod(input_shape), output_size)

    assert build_model("test_reregistered", {"width": "8"}, input_shape=(3,), output_size=2)

    @register_builder("test_reregistered")
    def second(*, input_shape, output_size, depth: int = 1):
        return nn.Linear(math.prod(input_shape), output_size)

    assert builder_parameters("test_reregistered") == {"depth": 1}
    with pytest.raises(ConfigError, match=r"unknown parameter.*accepted parameters: depth"):
        build_model("test_reregistered", {"width": 8}, input_shape=(3,), output_size=2)
    with pytest.raises(ConfigError, match=r"model\.params\.depth"):
        build_model("test_reregistered", {"depth": "two"}, input_shape=(3,), output_size=2)


def test_every_builtin_builder_is_registered_and_listed_by_config():
    assert {"mlp", "cnn", "resnet", "lstm", "gru", "transformer", "custom"} <= set(builder_names())
    assert set(builder_names()) <= set(allowed_names("model.builder"))
