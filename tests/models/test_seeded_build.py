"""The same config and seed build the same initial weights, whatever torch's global generator."""

from __future__ import annotations

import torch

from tunelab.config import ModelConfig, parse_config
from tunelab.data import DataBundle, prepare_data
from tunelab.models import build_from_config


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _bundle(seed: int) -> DataBundle:
    return prepare_data(parse_config({"seed": seed}).data, seed=seed)


def test_the_bundles_seed_decides_the_weights_not_the_global_generator():
    bundle = _bundle(3)
    cfg = ModelConfig(builder="mlp", params={"width": 16})
    torch.manual_seed(111)
    first, _ = build_from_config(cfg, bundle)
    torch.manual_seed(222)
    state = torch.random.get_rng_state()
    second, _ = build_from_config(cfg, bundle)
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second), strict=True))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched


def test_an_explicit_seed_wins_and_different_seeds_differ():
    bundle = _bundle(0)
    cfg = ModelConfig(builder="mlp", params={"width": 16})
    a, _ = build_from_config(cfg, bundle, seed=5)
    b, _ = build_from_config(cfg, bundle, seed=5)
    c, _ = build_from_config(cfg, bundle, seed=6)
    assert torch.equal(_weights(a)[0], _weights(b)[0])
    assert not torch.equal(_weights(a)[0], _weights(c)[0])
