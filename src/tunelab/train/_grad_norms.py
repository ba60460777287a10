"""``GradientNormSampler``: per-layer gradient norms, with the one definition of a layer.

The Trainer's TensorBoard histograms (``grad_norm/<layer>``) and the doctor's gradient probe
(``doctor/grad_rms/<layer>``, the vanishing/exploding detectors) both sample through this class,
so both name and measure the same layers.

A *layer* is a weight with ``ndim >= 2`` (linear, conv, recurrent matrices) in registration
order (the forward order for ``nn.Sequential`` and almost every hand-written model), named by
its parameter name without ``.weight``. Biases and norm scales are left out: their gradients
follow the weights' and would only blur a layer's figure. Embedding tables are left out: their
gradient is sparse by design.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> GradientNormSampler(net).names
['0', '2']
"""

from __future__ import annotations

import torch
import torch.nn as nn


def fused_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor as 0-d device tensors, in one fused kernel where possible."""
    try:
        return list(torch._foreach_norm(tensors))
    except (RuntimeError, TypeError):  # mixed devices/dtypes on some builds
        return [t.float().norm() for t in tensors]


def model_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(layer name, weight)`` of every layer of ``model`` (see the module's docstring)."""
    skip = {
        id(p)
        for m in model.modules()
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
        for p in m.parameters(recurse=False)
    }
    layers = []
    for name, p in model.named_parameters():
        if p.ndim >= 2 and id(p) not in skip:
            layers.append((name[: -len(".weight")] if name.endswith(".weight") else name, p))
    return layers


class GradientNormSampler:
    """Samples the gradient norm of each layer of ``model`` without a host sync.

    ``names`` and ``params`` are the layers; :meth:`sample_into` writes one norm per layer into
    a row of a device buffer (0 for a layer without a gradient, e.g. a frozen one);
    :meth:`present` is the layers that have a dense gradient now.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = model_layers(model)
        self.names = [n for n, _ in self.layers]
        self.params = [p for _, p in self.layers]

    fused_norms = staticmethod(fused_norms)

    def __len__(self) -> int:
        return len(self.layers)

    def present(self) -> list[tuple[str, nn.Parameter]]:
        """The layers whose gradient exists and is dense (call after backward)."""
        return [(n, p) for n, p in self.layers if p.grad is not None and not p.grad.is_sparse]

    def sample_into(self, row: torch.Tensor) -> None:
        """Write each layer's gradient norm into ``row`` (a float tensor of ``len(self)``)."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            row.zero_()
            present = [i for i, g in enumerate(grads) if g is not None]
            if present:
                row[present] = torch.stack(fused_norms([grads[i] for i in present])).float()
        elif grads:
            norms = fused_norms(grads)
            if all(n.dtype == row.dtype and n.device == row.device for n in norms):
                torch.stack(norms, out=row)  # straight into the buffer: no temporary
            else:
                row.copy_(torch.stack([n.to(row.device, row.dtype) for n in norms]))
