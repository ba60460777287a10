"""Population training vs sequential tunelab trials: trials per hour, and equal results.

K trials (random learning rate, weight decay, dropout, label smoothing, init seed) of one
architecture on sklearn's digits (1437 train / 360 validation rows) are trained twice, in one
process on one torch thread (like for like): one by one with tunelab's ``Trainer`` (progress
and TensorBoard off, early stopping off so both arms run the same epochs), and as one
``Population``. Printed: wall and process CPU seconds of each arm, trials per hour and their
ratio, and a table of each member's final val accuracy next to the same config trained alone
(dropout masks come from different RNG streams, so members with dropout differ by seed noise;
members without dropout match to float rounding).

    python bench/population.py                    # MLP (64-64) and small CNN, K=16
    python bench/population.py --models mlp --k 16 --epochs 10
    python bench/population.py --models mlp --repeats 5  # arms alternated 5 times each
    python bench/population.py --forward           # + batched bmm forward vs torch.func.vmap
    python bench/population.py --study --trials 32 # end to end: `tunelab tune` executors
    python bench/population.py --packing           # packing widths vs a population each

``--study`` runs the same study (digits MLP 64-64, lr/weight decay/dropout/momentum searched,
random sampler, no pruner, early stopping off: every trial trains every epoch) through
``run_study`` twice, ``tune.executor: local`` (one trial at a time) and ``population`` (K at
once), everything included (storage, trial directories, ``best/``), and prints trials per hour.

``--packing`` measures what a narrow MLP member costs padded into a wider population against a
population of its own (``packing_compare``): the measurement behind the executor's packing rule
(``tunelab.tune._population.packing_pays``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from sklearn.datasets import load_digits

from tunelab.config import EarlyStoppingConfig, TrainConfig
from tunelab.data import DataBundle
from tunelab.models import ModelSpec
from tunelab.train import Trainer
from tunelab.train._population import population_from_trials

ARCHS = {
    "mlp": ("mlp", {"width": 64, "depth": 2}, (64,)),
    "cnn": ("cnn", {"channels": [8, 16], "hidden": 32}, (1, 8, 8)),
}


def digits(image: bool) -> DataBundle:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(X), generator=g).numpy()
    X, y = X[order], y[order]
    if image:
        X = X.reshape(-1, 1, 8, 8)
    return DataBundle.from_arrays(X[:1437], y[:1437], X[1437:], y[1437:])


def trials(k: int, epochs: int, params: dict, seed: int = 0) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(k):
        cfg = TrainConfig(
            epochs=epochs,
            batch_size=64,
            lr=10 ** rng.uniform(-3.5, -2),
            weight_decay=rng.choice([0.0, 1e-4, 1e-3]),
            label_smoothing=rng.choice([0.0, 0.0, 0.1]),
            early_stopping=EarlyStoppingConfig(enabled=False),
            progress="none",
            tensorboard=False,
            threads=1,
        )
        out.append((cfg, {**params, "dropout": rng.choice([0.0, 0.0, 0.1, 0.2])}, 100 + i))
    return out


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run(name: str, k: int, epochs: int, repeats: int = 1) -> None:
    builder, params, shape = ARCHS[name]
    bundle = digits(image=len(shape) == 3)
    spec = ModelSpec(builder, params, input_shape=shape, output_size=10)
    todo = trials(k, epochs, params)
    # warm-up both paths (first-call allocations, kernels)
    population_from_trials(spec, bundle, todo[:2]).train_epoch()
    torch.manual_seed(0)
    w = todo[0][0].model_copy(update={"epochs": 1})
    Trainer(w, seed=0).fit(spec.build(), bundle)

    def sequential() -> list:
        alone = []
        for cfg, p, seed in todo:
            torch.manual_seed(seed)
            model = ModelSpec(builder, p, input_shape=shape, output_size=10).build()
            alone.append(Trainer(cfg, seed=seed).fit(model, bundle))
        return alone

    def population() -> list:
        return population_from_trials(spec, bundle, todo).fit()

    # Arms alternate, the first one rotating, so a change of the machine's load between them
    # falls on both; each pair gives one ratio.
    times: dict[str, list[tuple[float, float]]] = {"sequential": [], "population": []}
    arms = {"sequential": sequential, "population": population}
    results: dict[str, list] = {}
    for r in range(repeats):
        for arm in ["sequential", "population"] if r % 2 == 0 else ["population", "sequential"]:
            w0, c0 = clocks()
            results[arm] = arms[arm]()
            w1, c1 = clocks()
            times[arm].append((w1 - w0, c1 - c0))
    alone, together = results["sequential"], results["population"]
    print(f"\n## {name} {params} on digits, K={k}, {epochs} epochs, batch 64, 1 thread")
    print(f"{repeats} alternating repeat(s); wall and CPU s: min (median)")
    print("| arm | wall s | CPU s | trials/hour (min wall) |")
    print("|---|---|---|---|")
    for arm, ts in times.items():
        wall, cpu = [t[0] for t in ts], [t[1] for t in ts]
        print(
            f"| {arm} | {min(wall):.2f} ({statistics.median(wall):.2f}) | "
            f"{min(cpu):.2f} ({statistics.median(cpu):.2f}) | {k / min(wall) * 3600:.0f} |"
        )
    pairs = [
        (s[0] / p[0], s[1] / p[1])
        for s, p in zip(times["sequential"], times["population"], strict=True)
    ]
    wall_r, cpu_r = [p[0] for p in pairs], [p[1] for p in pairs]
    print(
        f"speed-up (trials/hour): {statistics.median(wall_r):.2f}x wall "
        f"({min(wall_r):.2f}-{max(wall_r):.2f} per pair), {statistics.median(cpu_r):.2f}x CPU "
        f"({min(cpu_r):.2f}-{max(cpu_r):.2f})"
    )
    print(
        "\n| member | lr | wd | dropout | smoothing | val_acc alone | val_acc population | diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, ((cfg, p, _), a, b) in enumerate(zip(todo, alone, together, strict=True)):
        va, vb = a.history[-1]["val_accuracy"], b.history[-1]["val_accuracy"]
        print(
            f"| {i} | {cfg.lr:.2e} | {cfg.weight_decay:g} | {p['dropout']:g} | "
            f"{cfg.label_smoothing:g} | {va:.4f} | {vb:.4f} | {vb - va:+.4f} |"
        )


def components(name: str, k: int, epochs: int = 60, width: int | None = None) -> dict[str, float]:
    """Per-epoch wall ms (20th percentile) of the parts of a K-member population's epoch."""
    from tunelab.train import _population as P
    from tunelab.train import _population_dense as D
    from tunelab.train import _population_metrics as M
    from tunelab.train import _population_optim as O

    builder, params, shape = ARCHS[name]
    if width is not None:
        params = {**params, "width": width}
    bundle = digits(image=len(shape) == 3)
    spec = ModelSpec(builder, params, input_shape=shape, output_size=10)
    todo = trials(k, 10**6, params)  # members that keep running
    spent: dict[str, float] = {}
    parts = [
        (D.DenseStep, "forward", "forward (dense)"),
        (D.DenseStep, "backward", "backward (dense)"),
        (P.Population, "_autograd_step", "forward + backward (autograd)"),
        (M.MemberLoss, "value_and_grad", "loss and its gradient"),
        (O.PopulationOptimizer, "step", "optimiser step"),
        (D.DropoutMasks, "draw", "dropout masks"),
        (P.Population, "_validate", "validation"),
        (P.Population, "train_epoch", "epoch"),
    ]
    saved = [(cls, attr, getattr(cls, attr)) for cls, attr, _ in parts]

    def timed(fn, label):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
            return out

        return wrapper

    try:
        for (cls, attr, label), (_, _, fn) in zip(parts, saved, strict=True):
            setattr(cls, attr, timed(fn, label))
        pop = population_from_trials(spec, bundle, todo)
        for _ in range(5):
            pop.train_epoch()
        rows: dict[str, list[float]] = {}
        for _ in range(epochs):
            spent.clear()
            pop.train_epoch()
            for label, v in spent.items():
                rows.setdefault(label, []).append(v * 1e3)
            inner = sum(v for lab, v in spent.items() if lab != "epoch")
            rows.setdefault("rest of the epoch", []).append((spent["epoch"] - inner) * 1e3)
    finally:
        for cls, attr, fn in saved:
            setattr(cls, attr, fn)
    out = {}
    print(f"\n## where a population epoch goes: {name} {params}, K={k}, {epochs} epochs")
    print("| part | ms per epoch, p20 (median) |")
    print("|---|---|")
    for label, vals in rows.items():
        vals.sort()
        out[label] = vals[len(vals) // 5]
        print(f"| {label} | {out[label]:.2f} ({statistics.median(vals):.2f}) |")
    return out


def forward_compare(k: int, steps: int = 200) -> None:
    """One training step (forward + backward) of the MLP population: bmm program vs vmap."""
    from torch.func import functional_call, stack_module_state, vmap

    bundle = digits(image=False)
    spec = ModelSpec("mlp", {"width": 64, "depth": 2}, input_shape=(64,), output_size=10)
    cfg = TrainConfig(epochs=1, progress="none", tensorboard=False)
    pop = population_from_trials(spec, bundle, [(cfg, spec.params, i) for i in range(k)])
    models = [spec.build() for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = spec.build().to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = vmap(one)
    x = bundle.X_train[:64].unsqueeze(0).expand(k, -1, -1).contiguous()
    y = bundle.y_train[:64].unsqueeze(0).expand(k, -1)

    def time_it(fn) -> float:
        for _ in range(10):
            fn()
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        return (time.perf_counter() - t) / steps * 1e6

    def bmm_step():
        out = pop.forward(pop.params, pop.buffers, x, training=True)
        pop.loss(out, y).sum().backward()
        pop.grad.zero_()

    def vmap_step():
        out = batched(params, buffers, x)
        pop.loss(out, y).sum().backward()
        for p in params.values():
            p.grad = None

    print(f"\n## MLP population step (forward+backward), K={k}, batch 64, 1 thread")
    bmm_us, vmap_us = time_it(bmm_step), time_it(vmap_step)
    print(f"bmm program: {bmm_us:.0f} us/step; torch.func.vmap: {vmap_us:.0f} us/step")


def packing_compare(reps: int = 5) -> None:
    """What packing a narrow MLP member into a wider population costs against training it as
    a population of its own (the measurement behind the executor's packing rule).

    For each depth, batch size and pair of widths ``w < W`` (the search-efficiency spaces'),
    interleaved ``reps`` times, per epoch: ``alone`` = a one-member population of width ``w``;
    ``extra`` = a population of width ``W`` holding one member of ``W`` and the ``w`` member
    packed, minus the same population without it (what the packed member adds). Packing wins
    when ``extra < alone``. Inputs of 64 features (digits, 1437 training rows), Adam.
    """
    from tunelab.train._population import MemberSettings, Population

    bundle = digits(image=False)
    settings = MemberSettings(epochs=10**6, lr=1e-3, dropout=0.1)

    def spec(width: int, depth: int) -> ModelSpec:
        return ModelSpec("mlp", {"width": width, "depth": depth}, input_shape=(64,), output_size=10)

    def population(width: int, depth: int, bs: int, members: list[int]) -> Population:
        pop = Population(spec(width, depth), bundle, len(members), batch_size=bs)
        for k, w in enumerate(members):
            pop.replace_member(k, settings, 100 + k, model_params=spec(w, depth).params)
        pop.train_epoch()  # warm-up
        return pop

    def epoch_ms(pop: Population) -> float:
        t = time.perf_counter()
        pop.train_epoch()
        return (time.perf_counter() - t) * 1e3

    pairs = [(8, 32), (8, 128), (32, 128), (16, 64), (16, 256), (64, 256)]
    print(f"\n## packing a width-w member into a width-W population (ms per epoch, {reps} reps)")
    print("| depth | batch | w | W | alone(w) | extra(w in W) | extra / alone | P(W) - P(w) |")
    print("|---|---|---|---|---|---|---|---|")
    for depth in (1, 2, 3, 4):
        for bs in (16, 64, 128):
            for w, W in pairs:
                alone = population(w, depth, bs, [w])
                base = population(W, depth, bs, [W])
                packed = population(W, depth, bs, [W, w])
                t_alone, t_base, t_packed = [], [], []
                for _ in range(reps):
                    t_alone.append(epoch_ms(alone))
                    t_base.append(epoch_ms(base))
                    t_packed.append(epoch_ms(packed))
                a = statistics.median(t_alone)
                extra = statistics.median(t_packed) - statistics.median(t_base)
                n_params = [
                    sum(p.numel() for p in spec(x, depth).build().parameters()) for x in (w, W)
                ]
                print(
                    f"| {depth} | {bs} | {w} | {W} | {a:.1f} | {extra:.1f} | {extra / a:.2f} | "
                    f"{n_params[1] - n_params[0]} |",
                    flush=True,
                )


def study_config(root, executor: str, k: int, trials: int, epochs: int) -> dict:
    return {
        "name": f"bench_{executor}",
        "seed": 0,
        "run_root": str(root),
        "data": {
            "source": "sklearn",
            "dataset": "digits",
            "scale": "standard",
            "split": {"val": 0.15, "test": 0.15, "stratify": True},
        },
        "model": {
            "builder": "mlp",
            "params": {"depth": 2, "width": 64, "dropout": {"low": 0.0, "high": 0.3}},
        },
        "train": {
            "epochs": epochs,
            "optimizer": "sgd",
            "lr": {"low": 1e-3, "high": 0.1, "log": True},
            "momentum": {"low": 0.5, "high": 0.95},
            "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
            "batch_size": 64,
            "tensorboard": False,
            "early_stopping": {"enabled": False},
            "threads": 1,
        },
        "tune": {
            "trials": trials,
            "sampler": "random",
            "pruner": "none",
            "progress": "none",
            "executor": executor,
            "population": k,
        },
    }


def study_compare(k: int, trials: int, epochs: int) -> None:
    import tempfile
    from pathlib import Path

    from tunelab.tune import run_study

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("local", "population"):
            t0 = time.perf_counter()
            result = run_study(study_config(Path(tmp), executor, k, trials, epochs))
            wall = time.perf_counter() - t0
            done = result.count("complete")
            rates[executor] = done / wall * 3600
            best = result.best.values[0] if result.best else float("nan")
            print(
                f"study {executor:10s} trials={done} epochs={epochs} wall={wall:.1f}s "
                f"trials/h={rates[executor]:.0f} best val_loss={best:.4f}"
            )
    print(f"study population/local trials per hour: {rates['population'] / rates['local']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=sorted(ARCHS))
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternate the two arms this many times each"
    )
    ap.add_argument("--forward", action="store_true")
    ap.add_argument("--study", action="store_true", help="only the end-to-end executor study")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument(
        "--packing", action="store_true", help="only: packing widths vs a population each"
    )
    ap.add_argument(
        "--components", action="store_true", help="only: where a population epoch's time goes"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.packing:
        packing_compare()
        return
    if args.components:
        for name in args.models:
            components(name, args.k)
            if name == "mlp":
                components(name, args.k, width=1)  # the per-op overhead floor
        return
    if args.study:
        study_compare(args.k, args.trials, args.epochs)
        return
    for name in args.models:
        run(name, args.k, args.epochs, args.repeats)
    if args.forward:
        forward_compare(args.k)


if __name__ == "__main__":
    main()
