"""Few-shot transfer on digits: pretrained on 0-4 vs from scratch, learning 5-9.

The protocol of ``tests/models/test_transfer.py``, over more seeds and shot counts:
a ResNet (widths 16/32, one block per stage) is pretrained on digits 0-4 (750 images,
6 epochs), saved with ``save_model`` and used as ``model.checkpoint`` with a frozen backbone
(``unfreeze_after: 5``). Both arms then train on the same ``shots`` images per class of 5-9
with the same Trainer settings (60 epochs, batch 8, Adam 3e-3, no early stopping, last
epoch kept) and are tested on all other 5-9 images.

    python bench/transfer_digits.py --seeds 5 --shots 3 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from tunelab.config import ModelConfig, TrainConfig
from tunelab.data import DataBundle
from tunelab.models import build_from_config, save_model
from tunelab.train import Trainer

RESNET = {"widths": [16, 32], "blocks_per_stage": 1}


def quiet(**kw) -> TrainConfig:
    base = dict(progress="none", tensorboard=False, early_stopping={"enabled": False})
    return TrainConfig(**{**base, **kw})


def pretrain(X: np.ndarray, y: np.ndarray, folder: Path, epochs: int) -> None:
    low = np.flatnonzero(y < 5)
    np.random.default_rng(0).shuffle(low)
    bundle = DataBundle.from_arrays(X[low[:750]], y[low[:750]], X[low[750:]], y[low[750:]])
    torch.manual_seed(0)
    model, spec = build_from_config(ModelConfig(builder="resnet", params=RESNET), bundle)
    Trainer(quiet(epochs=epochs, lr=1e-3, batch_size=32), seed=0).fit(model, bundle)
    save_model(folder, model, spec)


def compare(
    X, y, folder: Path, shots: int, seed: int, args: argparse.Namespace
) -> dict[str, float]:
    high = np.flatnonzero(y >= 5)
    rng = np.random.default_rng(seed)
    picked = np.stack(
        [rng.choice(high[y[high] == c], shots + 3, replace=False) for c in range(5, 10)]
    )
    train, val = picked[:, :shots].ravel(), picked[:, shots:].ravel()
    test = np.setdiff1d(high, picked.ravel())
    bundle = DataBundle.from_arrays(
        X[train],
        y[train] - 5,
        X[val],
        y[val] - 5,
        X[test],
        y[test] - 5,
        classes=[str(c) for c in range(5, 10)],
    )
    arms = {
        "transfer": ModelConfig(
            checkpoint=str(folder),
            freeze_backbone=True,
            unfreeze_after=args.unfreeze_after,
            backbone_lr_mult=args.backbone_lr_mult,
        ),
        "scratch": ModelConfig(builder="resnet", params=RESNET),
    }
    accuracy = {}
    train_cfg = quiet(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, restore_best=False
    )
    for arm, cfg in arms.items():
        torch.manual_seed(seed)  # the new head and the scratch model start from this seed
        model, _ = build_from_config(cfg, bundle)
        trainer = Trainer(train_cfg, seed=seed)
        trainer.fit(model, bundle)
        accuracy[arm] = trainer.evaluate(model, bundle)["test_accuracy"]
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--unfreeze-after", type=int, default=5)
    parser.add_argument("--backbone-lr-mult", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    digits = load_digits()
    X, y = (digits.images / 16.0).astype("float32")[:, None], digits.target
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits04"
        pretrain(X, y, folder, args.pretrain_epochs)
        print(vars(args))
        print("| shots/class | seed | transfer | scratch | margin |")
        print("|---|---|---|---|---|")
        for shots in args.shots:
            rows = []
            for seed in range(args.seeds):
                acc = compare(X, y, folder, shots, seed, args)
                rows.append((acc["transfer"], acc["scratch"]))
                margin = acc["transfer"] - acc["scratch"]
                print(
                    f"| {shots} | {seed} | {acc['transfer']:.3f} | {acc['scratch']:.3f} | "
                    f"{margin:+.3f} |"
                )
            mean = np.mean(rows, axis=0)
            wins = sum(t > s for t, s in rows)
            print(
                f"| {shots} | mean | {mean[0]:.3f} | {mean[1]:.3f} | {mean[0] - mean[1]:+.3f} "
                f"({wins}/{len(rows)} won) |"
            )
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
