"""The learning-rate range test (``tunelab train CONFIG --find-lr``).

Trains for a few hundred steps (the Trainer's own optimiser step) while the learning rate
grows exponentially from ``start_lr`` to ``end_lr``, records the (smoothed) loss at each step,
stops once the sick-trial policy calls the loss diverged, and
suggests the LR where the loss falls fastest (the steepest point of loss vs log LR before the
minimum). The model's weights are restored afterwards: the test only looks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml

from ..config import TrainConfig, parse_config
from ..errors import ConfigError, FatalError
from ._checkpoint import atomic_write, cpu_state
from ._health import SickTrialPolicy
from ._step import MicroBatch
from ._trainer import Trainer


@dataclass
class LRFinderResult:
    """The sweep: one learning rate and (smoothed) loss per step, and the suggestion."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    min_loss_lr: float
    stopped_early: bool
    plot_path: Path | None = field(default=None)

    def rows(self, every: int = 10) -> list[tuple[float, float]]:
        """``(lr, smoothed loss)`` every ``every`` steps, plus the last step."""
        picked = list(range(0, len(self.lrs), every))
        if picked and picked[-1] != len(self.lrs) - 1:
            picked.append(len(self.lrs) - 1)
        return [(self.lrs[i], self.losses[i]) for i in picked]

    def plot(self, path: str | Path) -> Path:
        """Save loss vs LR (log scale) with the suggestion marked, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        ax.plot(self.lrs, self.raw_losses, color="0.8", lw=1, label="loss")
        ax.plot(self.lrs, self.losses, color="C0", lw=2, label="smoothed loss")
        ax.axvline(
            self.suggestion, color="C3", ls="--", label=f"suggested lr {self.suggestion:.2g}"
        )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        finite = [v for v in self.losses if math.isfinite(v)]
        if finite:
            low = min(v for v in [*finite, *self.raw_losses] if math.isfinite(v))
            ax.set_ylim(low * 0.9, min(max(finite), 3 * finite[0]) * 1.1)
        ax.legend()
        ax.set_title("LR range test")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        self.plot_path = path
        return path


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The LR of steepest descent of ``losses`` over log LR, before the minimum."""
    loss = np.asarray(losses, dtype=np.float64)
    lr = np.asarray(lrs, dtype=np.float64)
    ok = np.isfinite(loss)
    lr, loss = lr[ok], loss[ok]
    if len(loss) < 5:
        return float(lr[int(np.argmin(loss))] / 10) if len(loss) else float(lrs[0])
    low = int(np.argmin(loss))
    start = max(1, len(loss) // 10)  # the first steps are noise around the initial loss
    if low - start < 3:
        return float(lr[low] / 10)
    slope = np.gradient(loss[: low + 1], np.log(lr[: low + 1]))
    return float(lr[start + int(np.argmin(slope[start:]))])


def find_lr(
    model: nn.Module,
    bundle: Any,
    cfg: TrainConfig,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    seed: int = 0,
    smoothing: float = 0.98,
    diverge: float | None = None,
) -> LRFinderResult:
    """Run the range test on ``bundle``'s training split with ``cfg``'s optimiser and loss.

    Each step is the Trainer's own optimiser step, so ``accumulate_steps``, ``l1``, clipping
    (by norm or value) and the fp16 GradScaler apply as in training. The sweep stops when the
    sick-trial policy calls the smoothed loss sick (NaN/inf, or above ``diverge`` -- by default
    the policy's ``divergence_factor``, 4x -- times the best so far).
    """
    sweep = LRSweep(start_lr, end_lr, steps, smoothing=smoothing, diverge=diverge)
    trainer = Trainer(cfg, seed=seed, health=None)
    trainer._setup(model, bundle)  # the fit's plan and state; no callbacks are called
    saved = cpu_state(trainer.model)
    batches = _batches(trainer, int(cfg.accumulate_steps))
    trainer.model.train()
    try:
        for step in range(steps):
            lr = sweep.lr(step)
            for group in trainer.state.optimizer.param_groups:
                group["lr"] = lr
            losses = trainer._optimiser_step(next(batches))
            # A sync per step is fine: this probes, it does not train.
            if sweep.record(lr, float(torch.stack(losses).float().mean())):
                break
    finally:
        trainer.model.load_state_dict(saved)
        trainer._reset_globals()
    return sweep.result()


class LRSweep:
    """The bookkeeping of one range test: the exponential LR schedule, the bias-corrected
    smoothed loss, the stop rule (the sick-trial policy: NaN/inf, or above ``diverge`` -- by
    default its ``divergence_factor`` -- times the best smoothed loss) and the result. Shared
    by the Trainer's test (:func:`find_lr`) and the doctor's for a plain loop."""

    def __init__(
        self,
        start_lr: float,
        end_lr: float,
        steps: int,
        *,
        smoothing: float = 0.98,
        diverge: float | None = None,
    ) -> None:
        if not 0 < start_lr < end_lr:
            raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
        self.start_lr, self.steps, self.smoothing = start_lr, steps, smoothing
        self.factor = (end_lr / start_lr) ** (1 / max(1, steps - 1))
        self.policy = (
            SickTrialPolicy() if diverge is None else SickTrialPolicy(divergence_factor=diverge)
        )
        self.lrs: list[float] = []
        self.raw: list[float] = []
        self.smooth: list[float] = []
        self._avg, self._best = 0.0, math.inf

    def lr(self, step: int) -> float:
        return self.start_lr * self.factor**step

    def record(self, lr: float, value: float) -> bool:
        """Add one step's loss; True when the sweep should stop (the loss diverged)."""
        step = len(self.lrs)
        self._avg = self.smoothing * self._avg + (1 - self.smoothing) * value
        smoothed = self._avg / (1 - self.smoothing ** (step + 1))
        self.lrs.append(lr)
        self.raw.append(value)
        self.smooth.append(smoothed)
        if self.policy.judge_step(step + 1, smoothed, best_loss=self._best) is not None:
            return True
        self._best = min(self._best, smoothed)
        return False

    def result(self) -> LRFinderResult:
        if not self.lrs:
            raise ValueError("the range test recorded no step")
        pairs = zip(self.smooth, self.lrs, strict=True)
        finite = [(loss, lr) for loss, lr in pairs if math.isfinite(loss)]
        min_lr = min(finite)[1] if finite else self.lrs[0]
        return LRFinderResult(
            self.lrs,
            self.smooth,
            self.raw,
            suggest_lr(self.lrs, self.smooth),
            min_lr,
            len(self.lrs) < self.steps,
        )


def _batches(trainer: Trainer, accumulate: int) -> Iterator[list[MicroBatch]]:
    """Endless optimiser steps of ``accumulate`` micro-batches, reshuffled as each pass ends."""
    plan, gen, device = trainer.plan, trainer.state.generator, trainer.device
    X, y = plan.X, plan.y
    bs = min(int(trainer.config.batch_size), len(X))
    order, pos = torch.empty(0, dtype=torch.long), 0
    while True:
        micro = []
        for _ in range(accumulate):
            if pos + bs > len(order):
                order, pos = torch.randperm(len(X), generator=gen, device=device), 0
            idx = order[pos : pos + bs]
            pos += bs
            xb = X[idx] if plan.augmenter is None else plan.augmenter(X[idx], gen)
            micro.append((xb, y[idx], 1.0 / accumulate))
        yield micro


_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


def write_lr(config_path: str | Path, lr: float) -> None:
    """Set ``train.lr`` in the YAML file in place, keeping its comments and layout."""
    path = Path(config_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    value = f"{lr:.3g}"
    train_at = next(
        (i for i, line in enumerate(lines) if re.match(r"^train\s*:\s*(#.*)?$", line)), None
    )
    if train_at is None:
        if any(re.match(r"^train\s*:", line) for line in lines):
            raise FatalError(f"error: {path}: write train.lr by hand (train: is a flow mapping)")
        text = "".join(lines)
        sep = "" if not text or text.endswith("\n") else "\n"
        _write_checked(path, f"{text}{sep}train:\n  lr: {value}\n", value)
        return
    end, indent = len(lines), None
    for i in range(train_at + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _TOP_KEY.match(line):
            end = i
            break
        width = len(line) - len(line.lstrip(" "))
        indent = width if indent is None else min(indent, width)
    pad = " " * (indent or 2)
    for i in range(train_at + 1, end):
        match = re.match(rf"^{pad}lr\s*:(.*)$", lines[i].rstrip("\n"))
        if match:
            rest = match.group(1).strip()
            if not rest or rest.startswith("#"):
                raise FatalError(
                    f"error: {path}:{i + 1}: train.lr is a search space; edit it by hand"
                )
            comment = re.search(r"\s+#.*$", rest)
            lines[i] = f"{pad}lr: {value}{comment.group(0) if comment else ''}\n"
            break
    else:
        lines.insert(train_at + 1, f"{pad}lr: {value}\n")
    _write_checked(path, "".join(lines), value)


def _write_checked(path: Path, text: str, value: str) -> None:
    """Write ``text`` only if it still parses as a config whose ``train.lr`` is ``value``."""
    try:
        written = parse_config(yaml.safe_load(text)).train.lr
    except (ConfigError, yaml.YAMLError) as exc:
        raise FatalError(f"error: could not write train.lr into {path}: {exc}") from None
    if not isinstance(written, float) or not math.isclose(written, float(value)):
        raise FatalError(f"error: could not write train.lr into {path}; edit it by hand")
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
