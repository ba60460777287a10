"""Weight init schemes change the weights as their definitions say; count_parameters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tunelab.models import build_model, count_parameters, freeze_backbone, init_weights

BIG = {"depth": 1, "width": 512}


def _first_linear(model):
    return next(m for m in model.modules() if isinstance(m, nn.Linear))


def test_default_init_is_pytorchs_own():
    torch.manual_seed(3)
    ours = build_model("mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=2)
    torch.manual_seed(3)
    plain = nn.Linear(4, 8)
    assert torch.equal(_first_linear(ours).weight, plain.weight)


def test_kaiming_gives_fan_in_relu_variance_and_zero_bias():
    model = build_model("mlp", BIG, input_shape=(256,), output_size=2, init="kaiming")
    layer = _first_linear(model)
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0


def test_xavier_stays_within_the_glorot_bound_and_fills_it():
    model = build_model("mlp", BIG, input_shape=(256,), output_size=2, init="xavier")
    w = _first_linear(model).weight
    bound = math.sqrt(6 / (256 + 512))
    assert w.abs().max().item() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)  # uniform's std


def test_orthogonal_makes_weight_rows_orthonormal_including_recurrent_weights():
    model = build_model(
        "mlp", {"depth": 1, "width": 32}, input_shape=(64,), output_size=2, init="orthogonal"
    )
    w = _first_linear(model).weight  # 32 x 64: rows are orthonormal
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)
    lstm = build_model("lstm", {"hidden": 8}, input_shape=(5, 3), output_size=2, init="orthogonal")
    hh = lstm.rnn.weight_hh_l0  # 32 x 8: columns are orthonormal
    assert torch.allclose(hh.T @ hh, torch.eye(8), atol=1e-5)
    assert torch.count_nonzero(lstm.rnn.bias_hh_l0) == 0


def test_schemes_reach_convolutions_and_attention_but_leave_norms_alone():
    cnn = build_model(
        "cnn", {"channels": [64]}, input_shape=(8, 8, 8), output_size=2, init="kaiming"
    )
    conv = cnn.body[0]
    fan_in = 8 * 3 * 3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    bn = cnn.body[1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    tr = build_model(
        "transformer",
        {"d_model": 16, "heads": 2, "layers": 1},
        input_shape=(6, 3),
        output_size=2,
        init="orthogonal",
    )
    attn = tr.encoder.layers[0].self_attn
    w = attn.in_proj_weight  # 48 x 16
    assert torch.allclose(w.T @ w, torch.eye(16), atol=1e-5)


def test_each_scheme_gives_different_weights_for_the_same_seed():
    weights = {}
    for scheme in ("default", "kaiming", "xavier", "orthogonal"):
        torch.manual_seed(0)
        model = build_model(
            "mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=2, init=scheme
        )
        weights[scheme] = _first_linear(model).weight.detach().clone()
    values = list(weights.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1 :])


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="kaiming"):
        init_weights(nn.Linear(2, 2), "lecun")


def test_count_parameters_can_count_only_trainable_ones():
    model = build_model("mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=3)
    assert count_parameters(model) == 4 * 8 + 8 + 8 * 3 + 3
    freeze_backbone(model)
    assert count_parameters(model, trainable_only=True) == 8 * 3 + 3
