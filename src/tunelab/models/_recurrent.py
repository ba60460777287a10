"""``lstm`` and ``gru``: recurrent sequence classifiers/regressors.

Input is ``(seq_len, features)``; a 1-D input is a sequence of scalars and an image is read row
by row (see :func:`~tunelab.models._base.sequence_shape`). The head reads either the final
hidden state (both directions concatenated when bidirectional) or the mean over time steps.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from ._base import DropoutRate, HeadedModel, PositiveInt, as_sequence, sequence_shape
from ._registry import register_builder


class RecurrentNet(HeadedModel):
    """An ``nn.LSTM`` or ``nn.GRU`` (batch first) with a linear ``head``."""

    def __init__(
        self,
        cell: str,
        in_shape: tuple[int, ...],
        output_size: int,
        *,
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        self.steps, self.step_features = sequence_shape(cell, in_shape)
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_type(
            self.step_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            # PyTorch applies this between stacked layers only; it warns if there is one layer.
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(hidden * self.directions, output_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        seq = as_sequence(x, self.steps, self.step_features)
        outputs, state = self.rnn(seq)
        if self.pooling == "mean":
            pooled = outputs.mean(dim=1)
        else:
            h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
            # The last layer's final state of each direction: forward at t=T, backward at t=0.
            last = h_n[-self.directions :]  # (directions, batch, hidden)
            pooled = last.transpose(0, 1).reshape(last.shape[1], -1)
        return self.dropout(pooled)


def _recurrent_builder(cell: str):
    def build(
        *,
        input_shape: tuple[int, ...],
        output_size: int,
        hidden: PositiveInt = 64,
        layers: PositiveInt = 1,
        bidirectional: bool = False,
        dropout: DropoutRate = 0.0,
        pooling: Literal["last", "mean"] = "last",
    ) -> RecurrentNet:
        return RecurrentNet(
            cell,
            input_shape,
            output_size,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            dropout=dropout,
            pooling=pooling,
        )

    build.__name__ = cell
    build.__doc__ = f"""An {cell.upper()} over ``(seq_len, features)`` input.

    Args:
        hidden: hidden units per direction.
        layers: stacked recurrent layers.
        bidirectional: also read the sequence backwards (doubles the head's input).
        dropout: between stacked layers and before the head.
        pooling: ``last`` (final hidden state) or ``mean`` (average over time steps).
    """
    return build


lstm = register_builder("lstm")(_recurrent_builder("lstm"))
gru = register_builder("gru")(_recurrent_builder("gru"))
