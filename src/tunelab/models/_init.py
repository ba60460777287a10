"""Weight initialisation schemes and the parameter count.

``default`` keeps PyTorch's per-layer defaults. The others re-initialise every weight matrix
of linear, convolution, recurrent and attention layers and zero their biases; normalisation
layers and embeddings keep their defaults (their scale is not a fan-in question).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

INIT_SCHEMES = ("default", "kaiming", "xavier", "orthogonal")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _kaiming(weight: torch.Tensor) -> None:
    # fan_in with the ReLU gain: keeps activation variance constant through ReLU stacks.
    nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")


def _xavier(weight: torch.Tensor) -> None:
    nn.init.xavier_uniform_(weight)


def _orthogonal(weight: torch.Tensor) -> None:
    nn.init.orthogonal_(weight)


_SCHEMES: dict[str, Callable[[torch.Tensor], None]] = {
    "kaiming": _kaiming,
    "xavier": _xavier,
    "orthogonal": _orthogonal,
}


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "default") -> nn.Module:
    """Re-initialise ``model`` in place with ``scheme`` and return it.

    Example:
        >>> import torch, torch.nn as nn
        >>> from tunelab.models import init_weights
        >>> layer = init_weights(nn.Linear(16, 16), "orthogonal")
        >>> torch.allclose(layer.weight @ layer.weight.T, torch.eye(16), atol=1e-5)
        True
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}, got {scheme!r}")
    if scheme == "default":
        return model
    fill = _SCHEMES[scheme]
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            fill(module.weight)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters(recurse=False):
                if name.startswith("weight"):
                    fill(param)
                elif name.startswith("bias"):
                    param.zero_()
        elif isinstance(module, nn.MultiheadAttention):
            # The packed q/k/v projection is not an nn.Linear; out_proj is, and is handled above.
            if module.in_proj_weight is not None:
                fill(module.in_proj_weight)
            else:
                for proj in (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight):
                    fill(proj)
            if module.in_proj_bias is not None:
                module.in_proj_bias.zero_()
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``).

    Example:
        >>> import torch.nn as nn
        >>> from tunelab.models import count_parameters
        >>> count_parameters(nn.Linear(10, 2))
        22
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
