"""``transformer``: a small pre-norm Transformer encoder classifier/regressor.

Sequences ``(seq_len, features)`` are projected to ``d_model`` per step. A 1-D (tabular) input
becomes one token per feature, ``value * w_i + b_i`` with a learned ``w_i, b_i`` per feature
(the FT-Transformer tokeniser), so attention runs across features. Images are read row by row.
A learned positional embedding is added; the head reads a learned [CLS] token or the mean.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from ._base import DropoutRate, HeadedModel, PositiveInt, as_sequence, sequence_shape
from ._registry import param_error, register_builder


class FeatureTokenizer(nn.Module):
    """One ``d_model`` token per scalar feature: ``x_i * weight_i + bias_i``."""

    def __init__(self, num_features: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_features, d_model) * d_model**-0.5)
        self.bias = nn.Parameter(torch.zeros(num_features, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class TransformerNet(HeadedModel):
    """Tokens + positions -> ``layers`` encoder layers -> LayerNorm -> pooled -> ``head``."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        output_size: int,
        *,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        dropout: float = 0.1,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        self.tabular = len(in_shape) == 1
        if self.tabular:
            self.steps, self.step_features = in_shape[0], 1
            self.embed: nn.Module = FeatureTokenizer(in_shape[0], d_model)
        else:
            self.steps, self.step_features = sequence_shape("transformer", in_shape)
            self.embed = nn.Linear(self.step_features, d_model)
        self.pooling = pooling
        tokens = self.steps + (1 if pooling == "cls" else 0)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.position = nn.Parameter(torch.randn(1, tokens, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # Nested tensors only help with padding masks, which fixed-length inputs never have.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, output_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.tabular:
            tokens = self.embed(x.reshape(x.shape[0], self.steps))
        else:
            tokens = self.embed(as_sequence(x, self.steps, self.step_features))
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        encoded = self.norm(self.encoder(tokens + self.position))
        return encoded[:, 0] if self.cls is not None else encoded.mean(dim=1)


@register_builder("transformer")
def transformer(
    *,
    input_shape: tuple[int, ...],
    output_size: int,
    d_model: PositiveInt = 64,
    heads: PositiveInt = 4,
    layers: PositiveInt = 2,
    ff: PositiveInt = 128,
    dropout: DropoutRate = 0.1,
    pooling: Literal["cls", "mean"] = "cls",
) -> TransformerNet:
    """A Transformer encoder over sequence, tabular (feature tokens) or image-row input.

    Args:
        d_model: token width; must be divisible by ``heads``.
        heads: attention heads.
        layers: encoder layers.
        ff: hidden width of each layer's feed-forward block.
        dropout: dropout inside the encoder layers.
        pooling: ``cls`` (a learned summary token) or ``mean`` over tokens.
    """
    if d_model % heads:
        raise param_error("d_model", d_model, f"must be divisible by heads ({heads})")
    return TransformerNet(
        input_shape,
        output_size,
        d_model=d_model,
        heads=heads,
        layers=layers,
        ff=ff,
        dropout=dropout,
        pooling=pooling,
    )
