"""The thread rule of a fit without ``train.threads``: small networks get one thread."""

from __future__ import annotations

import torch
import torch.nn as nn

from tunelab.config import TrainConfig
from tunelab.train import Callback, Trainer, _threads


def _mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def test_a_small_mlp_needs_one_thread_whatever_the_cores(monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 16)
    torch.set_num_threads(2)
    assert _threads.auto_threads(_mlp(128), torch.zeros(1, 64), 64) == 1


def test_a_large_network_gets_the_free_cores_but_no_more_than_torch_has(monkeypatch):
    big = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    example = torch.zeros(1, 3, 32, 32)
    assert _threads.step_flops(big, example, 64) > 10 * _threads.FLOP_PER_THREAD
    monkeypatch.setattr(_threads, "free_cores", lambda: 3)
    torch.set_num_threads(2)
    assert _threads.auto_threads(big, example, 64) == 2  # the caller's 2 threads cap it
    monkeypatch.setattr(_threads, "free_cores", lambda: 1)
    assert _threads.auto_threads(big, example, 64) == 1  # a busy machine: one thread


def test_step_flops_counts_linear_layers_exactly():
    # Forward multiply-adds 64*32 + 32*10 per row; x batch 8; x3 for the backward pass.
    assert _threads.step_flops(_mlp(32), torch.zeros(1, 64), 8) == 3 * 8 * (64 * 32 + 32 * 10)


def test_a_fit_without_threads_trains_a_small_model_on_one_thread(digits):
    seen = []

    class Threads(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append(torch.get_num_threads())

    torch.set_num_threads(2)
    cfg = TrainConfig(epochs=1, tensorboard=False, progress="none")
    Trainer(cfg, callbacks=[Threads()]).fit(_mlp(32), digits)
    assert seen == [1]
    assert torch.get_num_threads() == 2  # put back after the fit
