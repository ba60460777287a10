"""Compression benchmark: size, CPU latency and test accuracy of pruned, int8 and distilled models.

Three models, each trained here with tunelab's Trainer on data prepared by tunelab.data:

* ``digits-mlp``: MLP 64-256-256-10 on sklearn's digits (flat, standardised);
* ``digits-cnn``: CNN (conv 32, conv 64, fc 128) on digits as 1x8x8 images;
* ``wide-mlp``: MLP 512-1024-1024-10 on a synthetic 10-class set (8,000 rows, 512 features).

For each, ``tunelab.compress.compress_model`` builds the variants (int8 via ONNX Runtime, 50%
structured pruning + fine-tune, distillation to half width, and the chain distill -> prune ->
quantize) and measures them on the test split: parameters, file size, latency p50/p95 at batch 1
and 64 (warm-up excluded, threads fixed), throughput and accuracy. Then:

* the int8 mode comparison (dynamic vs static on every model) behind ``quantize_mode: auto``;
* interleaved speed-ups: the original, the int8 model and the pruned model are called in
  alternating blocks of 50 calls (batch 64, same rows, 40 rounds), so machine load hits all
  alike; the goal checks use these.

Goals (issue 7): int8 >= 3.5x smaller and >= 3x faster than torch fp32 at batch 64 with <= 1
point accuracy drop; 50% structured pruning + fine-tune >= 1.5x faster with <= 1 point drop.

    python bench/compression.py                       # all three, 1 thread
    python bench/compression.py --models digits-mlp --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.compress import (
    CompressContext,
    OnnxPredictor,
    Quantize,
    Variant,
    compress_model,
    fixed_threads,
    predict_batched,
    task_metric,
)
from tunelab.config import parse_config
from tunelab.data import prepare_data
from tunelab.models import ModelSpec
from tunelab.train import Trainer

MODELS: dict[str, dict[str, Any]] = {
    "digits-mlp": {
        "data": {"source": "sklearn", "dataset": "digits"},
        "model": ("mlp", {"depth": 2, "width": 256}),
        "epochs": 40,
    },
    "digits-cnn": {
        "data": {"source": "sklearn", "dataset": "digits", "as_images": True},
        "model": ("cnn", {"channels": [32, 64], "hidden": 128}),
        "epochs": 30,
    },
    "wide-mlp": {
        "data": {
            "source": "synthetic",
            "synthetic": {
                "n_samples": 8000,
                "n_features": 512,
                "n_informative": 48,
                "n_redundant": 0,
                "n_classes": 10,
                "class_sep": 2.0,
                "flip_y": 0.0,
            },
        },
        "model": ("mlp", {"widths": [1024, 1024]}),
        "epochs": 15,
    },
}
CHAINS = [["quantize"], ["prune"], ["distill"], ["distill", "prune", "quantize"]]


def train(name: str, threads: int) -> tuple[torch.nn.Module, ModelSpec, Any, Any]:
    setup = MODELS[name]
    cfg = parse_config(
        {
            "name": name,
            "seed": 0,
            "data": setup["data"],
            "model": {"builder": setup["model"][0], "params": setup["model"][1]},
            "train": {
                "epochs": setup["epochs"],
                "lr": 1e-3,
                "batch_size": 64,
                "progress": "none",
                "tensorboard": False,
                "early_stopping": {"patience": 6},
            },
            "compress": {
                "finetune_epochs": 8,
                "latency_threads": threads,
                "latency_repeats": 200,
                "sparsity": 0.5,
            },
        }
    )
    bundle = prepare_data(cfg.data, seed=cfg.seed)
    torch.manual_seed(0)
    spec = ModelSpec(
        setup["model"][0],
        setup["model"][1],
        input_shape=bundle.input_shape,
        output_size=bundle.output_size,
        task=bundle.task,
        classes=bundle.classes,
    )
    model = spec.build()
    started = time.perf_counter()
    result = Trainer(cfg.train, seed=0).fit(model, bundle)
    print(
        f"[{name}] trained {result.epochs_run} epochs in {time.perf_counter() - started:.1f} s "
        f"({result.status})",
        flush=True,
    )
    return model.eval(), spec, bundle, cfg


def interleaved(
    predictors: dict[str, Any], X: np.ndarray, *, threads: int, rounds: int, block: int = 50
) -> dict:
    """Median per-call wall and CPU ms of each predictor, in alternating blocks of calls.

    Each round calls every predictor ``block`` times in a row (a server calls one model over
    and over, so its code and weights stay in cache), then moves to the next; the order flips
    every round. Drifting machine speed hits all contenders alike, and no contender pays for
    the cache the others evicted on every single call (per-call alternation did that: it made
    torch's ~0.1 ms fixed cost of a small MLP call look 50% bigger than it is in a loop).
    """
    batch = np.ascontiguousarray(X[:64], dtype=np.float32)
    wall: dict[str, list[float]] = {k: [] for k in predictors}
    cpu: dict[str, list[float]] = {k: [] for k in predictors}
    with fixed_threads(threads):
        for p in predictors.values():
            for _ in range(10):
                p(batch)
        for r in range(rounds):
            names = list(predictors) if r % 2 == 0 else list(reversed(predictors))
            for k in names:
                predictor = predictors[k]
                predictor(batch)  # first call of the block warms this model's cache lines
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(block):
                    predictor(batch)
                wall[k].append((time.perf_counter() - t0) * 1000 / block)
                cpu[k].append((time.process_time() - c0) * 1000 / block)
    return {
        k: {"wall_ms": statistics.median(wall[k]), "cpu_ms": statistics.median(cpu[k])}
        for k in predictors
    }


def bench_model(name: str, threads: int, out_root: Path) -> dict[str, Any]:
    model, spec, bundle, cfg = train(name, threads)
    rows: list[dict[str, Any]] = []
    folders: dict[str, Path] = {}
    for chain in CHAINS:
        result = compress_model(
            model,
            spec,
            bundle,
            methods=chain,
            out_dir=out_root / name / "-".join(chain),
            config=cfg.compress,
            train_config=cfg.train,
            seed=0,
            log=lambda m: print(f"  [{name}] {m}", flush=True),
        )
        for row in result.table.rows:
            if row.variant == "original" and rows:
                continue
            if any(r["variant"] == row.variant for r in rows):
                continue
            rows.append(row.to_dict())
        folders.update(result.folders)
    base = rows[0]
    for r in rows:
        r["delta"] = r["test_metric"] - base["test_metric"]
        r["size_ratio"] = base["file_bytes"] / r["file_bytes"]
        r["speedup_b64"] = base["b64_p50_ms"] / r["b64_p50_ms"]

    # int8 modes (dynamic vs static) and the goal checks, all timed in one interleaved loop
    from tunelab.compress import load_variant

    X_test, y_test = bundle.X_test.numpy(), bundle.y_test.numpy()
    contenders = {
        "torch fp32": load_variant(folders["original"]).predictor,
        "ORT fp32": OnnxPredictor(folders["onnx"] / "model.onnx", threads=threads),
        "int8 (auto)": OnnxPredictor(folders["quantize"] / "model.onnx", threads=threads),
        "pruned 50%": load_variant(folders["prune"]).predictor,
    }
    modes = {}
    tmp = tempfile.TemporaryDirectory()
    original = Variant("original", (), spec, model=model)
    for mode in ("dynamic", "static"):
        ctx = CompressContext(
            bundle=bundle, train_config=cfg.train, work_dir=Path(tmp.name) / mode, threads=threads
        )
        q = Quantize(mode=mode, calibration_batches=8).apply(original, ctx)
        pred = OnnxPredictor(q.onnx_path, threads=threads)
        _, acc = task_metric(predict_batched(pred, X_test), y_test, bundle.task)
        contenders[f"int8 {mode}"] = pred
        modes[mode] = {"accuracy": acc, "file_bytes": q.onnx_path.stat().st_size}
    inter = interleaved(contenders, X_test, threads=threads, rounds=40)
    tmp.cleanup()
    for mode in modes:
        modes[mode].update(inter[f"int8 {mode}"])
    q_row = next(r for r in rows if r["variant"] == "quantize")
    p_row = next(r for r in rows if r["variant"] == "prune")
    goals = {
        "int8_size_ratio": q_row["size_ratio"],
        "int8_speedup_b64": inter["torch fp32"]["cpu_ms"] / inter["int8 (auto)"]["cpu_ms"],
        "int8_speedup_b64_wall": inter["torch fp32"]["wall_ms"] / inter["int8 (auto)"]["wall_ms"],
        "int8_delta_points": q_row["delta"] * 100,
        "prune_speedup_b64": inter["torch fp32"]["cpu_ms"] / inter["pruned 50%"]["cpu_ms"],
        "prune_speedup_b64_wall": inter["torch fp32"]["wall_ms"] / inter["pruned 50%"]["wall_ms"],
        "prune_delta_points": p_row["delta"] * 100,
    }
    goals["int8_ok"] = (
        goals["int8_size_ratio"] >= 3.5
        and goals["int8_speedup_b64"] >= 3.0
        and goals["int8_delta_points"] >= -1.0
    )
    goals["prune_ok"] = goals["prune_speedup_b64"] >= 1.5 and goals["prune_delta_points"] >= -1.0
    return {
        "model": name,
        "builder": spec.builder,
        "params": spec.params,
        "test_rows": len(X_test),
        "rows": rows,
        "modes": modes,
        "interleaved_ms": inter,
        "goals": goals,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"### {report['model']} ({report['builder']} {report['params']}, "
        f"{report['test_rows']} test rows)",
        "",
        "| variant | format | params | size | x smaller | b1 p50 / p95 ms | b64 p50 / p95 ms "
        "| b64 cpu ms | x faster b64 (cpu) | test acc | delta |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['variant']} | {r['format']} | {r['params']:,} | {r['file_bytes'] / 1024:.1f} KiB"
            f" | {r['size_ratio']:.2f} | {r['b1_p50_ms']:.3f} / {r['b1_p95_ms']:.3f}"
            f" | {r['b64_p50_ms']:.3f} / {r['b64_p95_ms']:.3f} | {r['b64_cpu_ms']:.3f}"
            f" | {r['speedup_b64']:.2f} ({r['speedup_b64_cpu']:.2f})"
            f" | {r['test_metric'] * 100:.2f}% | {r['delta'] * 100:+.2f} pt |"
        )
    m = report["modes"]
    lines += [
        "",
        "int8 modes (interleaved, b64): "
        + "; ".join(
            f"{k} {v['cpu_ms']:.3f} ms cpu / {v['wall_ms']:.3f} ms wall, "
            f"{v['accuracy'] * 100:.2f}%, {v['file_bytes'] / 1024:.1f} KiB"
            for k, v in m.items()
        ),
    ]
    i = report["interleaved_ms"]
    g = report["goals"]
    lines.append(
        "interleaved b64 (cpu / wall ms): "
        + ", ".join(f"{k} {v['cpu_ms']:.3f} / {v['wall_ms']:.3f}" for k, v in i.items())
    )
    lines.append(
        f"goals: int8 {g['int8_speedup_b64']:.2f}x faster (cpu; wall "
        f"{g['int8_speedup_b64_wall']:.2f}x), {g['int8_size_ratio']:.2f}x smaller, "
        f"{g['int8_delta_points']:+.2f} pt -> {'met' if g['int8_ok'] else 'NOT met'}; "
        f"pruned {g['prune_speedup_b64']:.2f}x faster (cpu; wall "
        f"{g['prune_speedup_b64_wall']:.2f}x), {g['prune_delta_points']:+.2f} pt -> "
        f"{'met' if g['prune_ok'] else 'NOT met'}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/out/compression"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reports = [bench_model(name, args.threads, args.out) for name in args.models.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(reports, indent=2, default=str))
    print()
    for report in reports:
        print(markdown(report), end="\n\n")


if __name__ == "__main__":
    main()
