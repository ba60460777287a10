"""How much the training doctor slows a training loop down, and how fast ``diagnose()`` is.

The same plain PyTorch loop (DataLoader over digits, Adam) runs with and without the doctor
(``watch`` + ``after_backward`` + ``end_epoch``), interleaved so that a busy machine hurts both
alike; each configuration is timed ``--repeats`` times (wall and process CPU time) and the
medians are compared, for an MLP and a CNN, and for the MLP inside tunelab's Trainer with
``diagnose.enabled``. Then ``diagnose()`` is timed on a 100-epoch history.

The doctor keeps its sampled work within ``overhead_budget`` (default 0.05) of the training
time; ``--budget none`` turns the budget off (sampling exactly every ``--every`` steps), and
each doctor-on line also prints the doctor's own measure of its share where it has one.

    python bench/doctor_overhead.py [--repeats 7] [--epochs 5] [--every 10] [--budget 0.05]
                                    [--trainer-pairs 15]

Each comparison also prints the median of the per-pair ratios and the ratio of the fastest runs
(on a busy machine a single median of 7 moves by +-0.1; the per-pair median moves less).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from tunelab.diagnose import Doctor

# The doctor's own account of its cost in the last doctor-on run (newer doctors only).
LAST_OVERHEAD: list[dict] = []
# Doctor keyword arguments from the command line (``overhead_budget``, when given).
DOCTOR_KW: dict = {}


def _note_overhead(doc) -> None:
    overhead = getattr(doc, "overhead", None)
    if overhead is not None:
        LAST_OVERHEAD.append(overhead)


def _own_measure() -> str:
    """The median share the doctors measured themselves, and what they put off."""
    if not LAST_OVERHEAD:
        return ""
    shares = [o["share"] for o in LAST_OVERHEAD if o.get("share") is not None]
    deferred = LAST_OVERHEAD[-1].get("deferred") or {}
    LAST_OVERHEAD.clear()
    if not shares:
        return ""
    return f"   (doctor's own measure: {statistics.median(shares):.1%}, put off {deferred})"


def _compare(name: str, off: list, on: list) -> float:
    """Print the on/off comparison of interleaved (wall, CPU) runs; return the wall ratio.

    The ratio of the medians (the goal's figure), and beside it the median of the per-pair
    ratios (each doctor-on run against the doctor-off run next to it, so a load change between
    pairs cancels) and the ratio of the fastest runs: on a busy machine the three disagree by
    about the noise."""
    a, b = (statistics.median(t[0] for t in runs) for runs in (off, on))
    ca, cb = (statistics.median(t[1] for t in runs) for runs in (off, on))
    pair_wall = statistics.median(y[0] / x[0] for x, y in zip(off, on, strict=True))
    pair_cpu = statistics.median(y[1] / x[1] for x, y in zip(off, on, strict=True))
    low_cpu = min(t[1] for t in on) / min(t[1] for t in off)
    print(
        f"{name} wall: off {a:6.3f} s  on {b:6.3f} s  on/off {b / a:5.3f}x   "
        f"CPU: off {ca:6.3f} s  on {cb:6.3f} s  on/off {cb / ca:5.3f}x{_own_measure()}\n"
        f"{'':{len(name)}s}   per-pair median on/off: wall {pair_wall:5.3f}x  CPU {pair_cpu:5.3f}x;"
        f"  fastest on / fastest off, CPU: {low_cpu:5.3f}x  ({len(on)} pairs)"
    )
    return b / a


def digits(images: bool) -> torch.utils.data.TensorDataset:
    X, y = load_digits(return_X_y=True)
    X = ((X / 16.0) - 0.3).astype(np.float32)
    Xt = torch.as_tensor(X)
    if images:
        Xt = Xt.reshape(-1, 1, 8, 8)
    return torch.utils.data.TensorDataset(Xt, torch.as_tensor(y))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 16, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def train(build, data, *, doctor: bool, epochs: int, every: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``epochs`` epochs of the plain loop (model built outside)."""
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    started, cpu = time.perf_counter(), time.process_time()
    doc = Doctor(model, opt, every_n_steps=every, **DOCTOR_KW) if doctor else None
    for _ in range(epochs):
        batches = doc.watch(loader) if doc else loader
        total = torch.zeros(())
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            if doc:
                doc.after_backward(loss)
            opt.step()
            total += loss.detach()
        if doc:
            doc.end_epoch(train_loss=float(total))
    if doc:
        doc.diagnose()
        doc.close()
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    if doc:
        _note_overhead(doc)
    return elapsed


def overhead(name: str, build, data, args) -> tuple[float, float, float]:
    train(build, data, doctor=True, epochs=1, every=args.every)  # warm-up
    train(build, data, doctor=False, epochs=1, every=args.every)
    LAST_OVERHEAD.clear()
    off, on = [], []
    for i in range(args.repeats):
        # Alternate which goes first, and collect garbage before each, so neither side
        # systematically inherits the other's leftovers.
        for doctor in (False, True) if i % 2 == 0 else (True, False):
            gc.collect()
            result = train(build, data, doctor=doctor, epochs=args.epochs, every=args.every)
            (on if doctor else off).append(result)
    a, b = (statistics.median(t[0] for t in runs) for runs in (off, on))
    return a, b, _compare(f"{name:4s}", off, on)


@contextlib.contextmanager
def doctor_timer():
    """Count process CPU time spent inside the doctor (outermost calls only).

    Every doctor entry point a loop, the Trainer or PyTorch's hooks call is wrapped; the data
    wait inside ``watch`` is not counted (it is the loader's time, not the doctor's).
    """
    from tunelab.diagnose import _callback, _doctor, _probes

    spent, depth, originals = [0.0], [0], []

    def timed(owner, attr):
        fn = getattr(owner, attr)
        originals.append((owner, attr, fn))

        def wrapper(*a, **k):
            depth[0] += 1
            started = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.process_time() - started

        setattr(owner, attr, wrapper)

    for attr in ("after_backward", "end_epoch", "diagnose", "close", "_before_forward"):
        timed(_doctor.Doctor, attr)
    for attr in ("_after_forward", "_after_step", "_observe_input"):
        timed(_doctor.Doctor, attr)
    timed(_probes.ActivationProbe, "hook")
    for attr in ("on_fit_start", "after_backward", "on_epoch_end", "on_fit_end"):
        timed(_callback.DoctorCallback, attr)
    try:
        yield spent
    finally:
        for owner, attr, fn in reversed(originals):
            setattr(owner, attr, fn)


def attributed(name: str, run, args) -> float:
    """The doctor's CPU time as a share of the rest of the run's CPU time (median of repeats):
    an estimate that a busy machine disturbs less than the on/off ratio."""
    shares = []
    with doctor_timer() as spent:
        for _ in range(args.repeats):
            spent[0] = 0.0
            gc.collect()
            cpu = run()
            shares.append(spent[0] / (cpu - spent[0]))
    share = statistics.median(shares)
    print(f"{name:14s} CPU time inside the doctor: {share:.1%} of the rest of the run")
    return share


def trainer_overhead(args) -> float:
    """The same comparison through tunelab's Trainer (``diagnose.enabled`` adds the callback)."""
    from tunelab.config import DiagnoseConfig, TrainConfig
    from tunelab.data import DataBundle
    from tunelab.diagnose import DoctorCallback
    from tunelab.train import Trainer

    X, y = load_digits(return_X_y=True)
    X = ((X / 16.0) - 0.3).astype(np.float32)
    bundle = DataBundle.from_arrays(X[:1400], y[:1400], X[1400:], y[1400:])
    cfg = TrainConfig(
        epochs=args.epochs, progress="none", tensorboard=False, early_stopping={"enabled": False}
    )

    settings = DiagnoseConfig(enabled=True, **DOCTOR_KW)

    def fit(doctor: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        model = mlp()
        callbacks = [DoctorCallback(settings)] if doctor else []
        started, cpu = time.perf_counter(), time.process_time()
        Trainer(cfg, callbacks=callbacks).fit(model, bundle)
        elapsed = time.perf_counter() - started, time.process_time() - cpu
        if callbacks:
            _note_overhead(callbacks[0].doctor)
        return elapsed

    fit(True), fit(False)  # warm-up
    LAST_OVERHEAD.clear()
    off, on = [], []
    # A 0.1-s fit is cheap: at least 15 interleaved pairs, so the medians mean something.
    for i in range(max(args.repeats, args.trainer_pairs)):
        for doctor in (False, True) if i % 2 == 0 else (True, False):
            gc.collect()
            (on if doctor else off).append(fit(doctor))
    ratio = _compare("MLP in Trainer ", off, on)
    attributed("MLP in Trainer", lambda: fit(True)[1], args)
    return ratio


def diagnose_time(args) -> float:
    """Median ``diagnose()`` time on a 100-epoch history (20 steps per epoch)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    doc = Doctor(model, opt, every_n_steps=args.every)
    X, y = torch.randn(640, 16), torch.randint(0, 4, (640,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=32)
    for _ in range(100):
        for xb, yb in doc.watch(loader):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            opt.step()
        doc.end_epoch(
            train_loss=float(loss.detach()),
            val_loss=float(loss.detach()) * 1.1,
            train_metric=0.9,
            val_metric=0.85,
        )
    times = []
    for _ in range(args.repeats):
        # A fresh detector pass each time: diagnose() would otherwise reuse the last epoch's
        # pass when it ran one (nothing recorded since), and this line times the pass itself.
        if hasattr(doc, "_pass_memo"):
            doc._pass_memo = None
        started = time.perf_counter()
        doc.diagnose()
        times.append(time.perf_counter() - started)
    ms = statistics.median(times) * 1e3
    print(f"diagnose() on {len(doc.record.epochs)} epochs / {doc.record.steps} steps: {ms:.1f} ms")
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--every", type=int, default=10, help="Doctor every_n_steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--trainer-pairs",
        type=int,
        default=15,
        help="interleaved on/off pairs of the Trainer fit (at least --repeats)",
    )
    parser.add_argument(
        "--budget",
        default=None,
        help="the doctor's overhead_budget (a share, or 'none'); default: the doctor's default",
    )
    args = parser.parse_args()
    if args.budget is not None:
        DOCTOR_KW["overhead_budget"] = None if args.budget == "none" else float(args.budget)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}, "
        f"{args.epochs} epochs of digits per run, every_n_steps={args.every}"
        + (f", overhead_budget={DOCTOR_KW['overhead_budget']}" if DOCTOR_KW else "")
    )
    overhead("MLP", mlp, digits(images=False), args)
    overhead("CNN", cnn, digits(images=True), args)
    trainer_overhead(args)
    for name, build, images in (("MLP", mlp, False), ("CNN", cnn, True)):
        data = digits(images=images)
        attributed(
            name,
            lambda b=build, d=data: train(b, d, doctor=True, epochs=args.epochs, every=args.every)[
                1
            ],
            args,
        )
    diagnose_time(args)


if __name__ == "__main__":
    main()
