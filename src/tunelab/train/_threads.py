"""How many CPU threads a fit uses when ``train.threads`` is not set.

Torch starts with one thread per core. For a small model that is the wrong default: each step's
matrix products are too small to split, so the threads spend the step synchronising, and on a
machine whose cores are busy (other trials, other users) a thread that waits for a core stalls
the whole step. Measured here: a small MLP's epoch went from 0.03 s on one thread to 2.8 s with
torch's default on a loaded 2-core machine, and a ``GridSearchCV`` over ``NeuralClassifier`` from
3.3 s to 105.7 s with identical results.

The rule (documented in docs/train.md):

- the work of one optimiser step is estimated from the layers and the shape of one example:
  the multiply-adds of every ``Linear``, convolution and recurrent layer (:func:`step_flops`),
  times the batch size, times three (forward, and backward through inputs and weights);
- a fit gets one thread per ``FLOP_PER_THREAD`` of that work, at least one;
- and at most the cores that are free: the cores this process may use minus the one-minute load
  average of the machine (rounded down), never below one;
- and never more than the threads torch already has, so a caller that set fewer (``tunelab tune
  --workers`` gives each worker its share) keeps its choice.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn

# About 50 MFLOP per step keeps one thread busy for ~1 ms on a current core: below that the
# per-op synchronisation of a second thread costs more than it saves.
FLOP_PER_THREAD = 50e6


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Usable cores minus the machine's one-minute load average, at least one."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - math.floor(load)))


def step_flops(model: nn.Module, example: torch.Tensor, batch_size: int) -> float:
    """Estimated FLOPs of one training step: 3x the forward multiply-adds of ``batch_size``.

    Read from the layers alone, without running the model (a forward pass would be a side
    effect a user's module can see): a ``Linear`` costs ``in x out`` per row; a convolution its
    kernel volume x channels at every position of the example's spatial size (an upper bound: it
    ignores downsampling, so convolutional nets lean towards more threads); a recurrent layer
    its gates x hidden x (input + hidden) per time step of the example.
    """
    spatial = math.prod(example.shape[2:]) if example.dim() > 2 else 1
    steps = example.shape[1] if example.dim() == 3 else 1
    macs = 0.0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
            macs += kernel * module.out_channels * spatial
        elif isinstance(module, nn.RNNBase):
            gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
            per_step = gates * module.hidden_size * (module.input_size + module.hidden_size)
            macs += per_step * steps * module.num_layers
    return 3.0 * macs * batch_size


def auto_threads(model: nn.Module, example: torch.Tensor, batch_size: int) -> int:
    """The thread count the rule in this module's docstring gives."""
    flops = step_flops(model, example, batch_size)
    wanted = max(1, math.floor(flops / FLOP_PER_THREAD))
    return max(1, min(wanted, free_cores(), torch.get_num_threads()))
