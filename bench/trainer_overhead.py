"""Trainer overhead: tunelab's ``Trainer`` against a minimal hand-written PyTorch loop.

Same data (digits, prepared by tunelab.data), same model and initial weights, same batch size,
optimiser (Adam), epochs and per-epoch validation. The Trainer uses torch's fused Adam kernel
(``train.fused_optimizer``, on by default); the hand loop runs twice, with torch's default
Adam (what people write) and with the fused kernel (like for like). The Trainer runs with its
progress display off and TensorBoard on (scalars, LR, gradient-norm histograms), writing
metrics.jsonl, checkpoint.pt and the best weights to a fresh run directory (made and deleted
outside the timed region). The three are interleaved (the order reversed every repeat), 5
timed repeats each after one warm-up, in one process, on one CPU thread. Printed: median
seconds per fit and the median of the per-repeat ratios (wall clock, and process CPU time,
which is steadier when other processes share the cores).

    python bench/trainer_overhead.py            # MLP and CNN on digits
    python bench/trainer_overhead.py --repeats 9 --epochs 30
    python bench/trainer_overhead.py --breakdown  # + CPU time spent in each trainer hook
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from tunelab.config import DataConfig, TrainConfig
from tunelab.data import prepare_data
from tunelab.models import build_model
from tunelab.train import Trainer


def hand_loop(
    model: nn.Module, bundle, *, epochs: int, batch_size: int, lr: float, fused: bool = False
) -> float:
    """The loop people write by hand: permutation, slices, forward, backward, step, eval.

    ``fused=True`` gives it the fused Adam kernel the Trainer uses by default, for a
    like-for-like comparison of everything else.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if fused else {}))
    loss_fn = nn.CrossEntropyLoss()
    X, y, Xv, yv = bundle.X_train, bundle.y_train, bundle.X_val, bundle.y_val
    gen = torch.Generator().manual_seed(0)
    n = len(X)
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(Xv)
            _val_loss = loss_fn(out, yv).item()
            accuracy = (out.argmax(1) == yv).float().mean().item()
    return accuracy


def trainer_fit(
    model: nn.Module, bundle, *, epochs: int, batch_size: int, lr: float, run_dir: Path
) -> float:
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer="adam",
        progress="none",
        tensorboard=True,
        early_stopping={"enabled": False},
    )
    result = Trainer(cfg, run_dir=run_dir).fit(model, bundle)
    return result.history[-1]["val_accuracy"]


def fresh_model(builder: str, params: dict, bundle) -> nn.Module:
    torch.manual_seed(0)
    return build_model(
        builder, params, input_shape=bundle.input_shape, output_size=bundle.output_size
    )


def compare(name, builder, params, bundle, *, epochs, batch_size, lr, repeats) -> dict:
    # Each trainer fit gets a fresh run directory, made and removed outside the timed region.
    scratch = Path(tempfile.mkdtemp(prefix="trainer_overhead_"))
    dirs = iter(scratch / str(i) for i in range(repeats + 1))
    runs = {
        "hand": hand_loop,
        "hand_fused": lambda *a, **k: hand_loop(*a, fused=True, **k),
        "trainer": lambda *a, **k: trainer_fit(*a, run_dir=next(dirs), **k),
    }
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    accuracy: dict[str, float] = {}
    for fn in runs.values():  # warm-up: allocator, imports, first-call costs
        fn(fresh_model(builder, params, bundle), bundle, epochs=1, batch_size=batch_size, lr=lr)
    for r in range(repeats):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for which in order:
            model = fresh_model(builder, params, bundle)
            w0, c0 = time.perf_counter(), time.process_time()
            accuracy[which] = runs[which](
                model, bundle, epochs=epochs, batch_size=batch_size, lr=lr
            )
            wall[which].append(time.perf_counter() - w0)
            cpu[which].append(time.process_time() - c0)
    shutil.rmtree(scratch, ignore_errors=True)

    def ratios(times: dict[str, list[float]], base: str) -> list[float]:
        return [t / h for t, h in zip(times["trainer"], times[base], strict=True)]

    row = {
        "model": name,
        "hand_s": statistics.median(wall["hand"]),
        "hand_fused_s": statistics.median(wall["hand_fused"]),
        "trainer_s": statistics.median(wall["trainer"]),
        "ratio": statistics.median(ratios(wall, "hand")),
        "cpu_ratio": statistics.median(ratios(cpu, "hand")),
        "ratio_fused": statistics.median(ratios(wall, "hand_fused")),
        "cpu_ratio_fused": statistics.median(ratios(cpu, "hand_fused")),
        "acc": {k: round(v, 3) for k, v in accuracy.items()},
    }
    print(
        f"{name}: hand {row['hand_s']:.3f}s  hand+fused Adam {row['hand_fused_s']:.3f}s  "
        f"trainer {row['trainer_s']:.3f}s\n"
        f"  trainer / hand loop:               median ratio {row['ratio']:.3f} wall, "
        f"{row['cpu_ratio']:.3f} CPU  (wall per repeat: "
        f"{', '.join(f'{x:.2f}' for x in ratios(wall, 'hand'))})\n"
        f"  trainer / hand loop + fused Adam:  median ratio {row['ratio_fused']:.3f} wall, "
        f"{row['cpu_ratio_fused']:.3f} CPU  (wall per repeat: "
        f"{', '.join(f'{x:.2f}' for x in ratios(wall, 'hand_fused'))})\n"
        f"  val acc {row['acc']}",
        flush=True,
    )
    return row


def breakdown(builder, params, bundle, *, epochs, batch_size, lr, fits: int = 3) -> None:
    """Process CPU time per fit inside the trainer's own bookkeeping (what a hand loop lacks)."""
    import collections
    import functools

    import tunelab.train._loggers as loggers
    import tunelab.train._trainer as trainer_module

    spent: collections.Counter[str] = collections.Counter()
    originals = []

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - start

        setattr(owner, name, wrapper)

    for cls in (loggers.MetricsFile, loggers.TensorBoardLogger):
        for hook in ("on_fit_start", "after_backward", "on_epoch_end", "on_fit_end"):
            if hook in cls.__dict__:
                timed(cls, hook, f"{cls.__name__}.{hook}")
    for method in ("fit", "_setup", "_validate", "_keep_best", "_save_checkpoint"):
        timed(trainer_module.Trainer, method, f"Trainer.{method}")
    scratch = Path(tempfile.mkdtemp(prefix="trainer_breakdown_"))
    try:
        for i in range(fits + 1):
            if i == 1:
                spent.clear()  # the first fit pays one-off imports
            model = fresh_model(builder, params, bundle)
            trainer_fit(
                model, bundle, epochs=epochs, batch_size=batch_size, lr=lr, run_dir=scratch / str(i)
            )
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        shutil.rmtree(scratch, ignore_errors=True)
    total = spent["Trainer.fit"]
    for label, seconds in spent.most_common():
        print(f"  {label:36s} {seconds / fits * 1000:8.2f} ms/fit  {seconds / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the trainer's bookkeeping per hook"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tab = prepare_data(DataConfig(source="sklearn", dataset="digits"), seed=0)
    img = prepare_data(DataConfig(source="sklearn", dataset="digits", as_images=True), seed=0)
    print(
        f"digits: {len(tab.X_train)} train / {len(tab.X_val)} val rows, batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.repeats} repeats, {args.threads} thread(s)",
        flush=True,
    )
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats}
    models = {
        "MLP": ("mlp", {"depth": 2, "width": 128}, tab),
        "CNN": ("cnn", {"channels": [16, 32], "hidden": 64}, img),
    }
    for name, (builder, params, bundle) in models.items():
        compare(name, builder, params, bundle, lr=1e-3, **common)
    if args.breakdown:
        for name, (builder, params, bundle) in models.items():
            print(f"{name} breakdown (process CPU time; the per-step hooks include timer cost):")
            breakdown(
                builder, params, bundle, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3
            )


if __name__ == "__main__":
    main()
