"""The loop and command line shared by held-out sets C and D (``doctor_heldout3.py``,
``doctor_heldout4.py``): the docs' plain PyTorch loop with the doctor, this script's own
measure of each run's outcome (for the label checks in ``heldout_labels.py``), and the
per-seed verdicts. Each set keeps its own runs, data and models.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from heldout_labels import label_doubt, weight_grads  # bench/ is on sys.path
from seed_tally import Scoreboard  # bench/ is on sys.path

from tunelab.diagnose import Doctor


@dataclass
class Outcome:
    """What the run did, measured by this script (not by the doctor)."""

    task: str
    n_val: int
    base: float  # the quick baseline's validation score (nan without one)
    first_loss: float  # the loss of the first training step
    train_losses: list[float]  # per epoch, the mean over the epoch's steps
    val_losses: list[float]
    val_scores: list[float]
    train_score: float  # at the last epoch
    grad_rms: list[float]  # per step: the largest per-weight gradient RMS of any layer
    first_grad_rms: list[float]  # per step: the first layer's weight-gradient RMS
    units: dict = field(default_factory=dict)  # dead / saturated shares after epoch 1 and at end
    waits: list[tuple[float, float]] = field(default_factory=list)  # per epoch: share, s/batch
    data: tuple = ()  # X_train, y_train, X_val, y_val as given


@dataclass
class Run:
    """One user's run: data, model, optimiser, loop settings and what an expert would say."""

    name: str
    expect: str | tuple[str, ...] | None  # the root cause's kind(s); None: a healthy run
    data: Callable[[int], tuple[np.ndarray, ...]]  # seed -> X_train, y_train, X_val, y_val
    model: Callable[[int, int], nn.Module]  # (inputs, outputs) -> module
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    epochs: int = 30
    batch: int = 32
    task: str = "classification"
    # ce | bce (one logit) | nll (log-probabilities out) | mse | huber | smoothl1 | l1 |
    # poisson (log-rate out)
    loss: str = "ce"
    shape: tuple[int, ...] | None = None  # reshape each row: (1, 64) signals, (1, 8, 8) images
    schedule: Callable | None = None  # (optimizer, steps per epoch, epochs) -> scheduler
    per_step_schedule: bool = False  # scheduler.step() after every step, else after each epoch
    dataset: Callable | None = None  # (X, y, seed) -> a torch Dataset, else a TensorDataset
    zero_grad: bool = True  # False: the loop never calls optimizer.zero_grad()
    check: Callable[[Outcome], str] | None = None  # faulty runs: why the label is in doubt


def unit_shares(model: nn.Module, X: torch.Tensor) -> dict[str, float]:
    """On up to 512 training rows, the largest share over layers of: a ReLU layer's units never
    active ("dead"; a conv layer's unit is a channel over all positions); a tanh/sigmoid layer's
    units in their flat region (|tanh| > 0.99, sigmoid < 0.01 or > 0.99) on > 99% of the rows
    ("saturated"), and of its outputs in that region ("flat"). The output layer has no activation
    in these models."""
    acts: list[tuple[str, torch.Tensor]] = []
    kinds = [
        (m, "relu" if isinstance(m, nn.ReLU) else "tanh" if isinstance(m, nn.Tanh) else "sigmoid")
        for m in model.modules()
        if isinstance(m, nn.ReLU | nn.Tanh | nn.Sigmoid)
    ]
    hooks = [
        m.register_forward_hook(lambda m, i, o, kind=kind: acts.append((kind, o.detach())))
        for m, kind in kinds
    ]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(X[:512])
    model.train(was)
    for h in hooks:
        h.remove()
    dead_share, sat_share, flat_share = 0.0, 0.0, 0.0
    for kind, a in acts:
        a = a.flatten(2).transpose(1, 2).reshape(-1, a.shape[1]) if a.dim() > 2 else a
        if kind == "relu":
            dead_share = max(dead_share, float(((a > 0).float().mean(0) == 0).float().mean()))
        else:
            flat = a.abs() > 0.99 if kind == "tanh" else (a < 0.01) | (a > 0.99)
            sat_share = max(sat_share, float((flat.float().mean(0) > 0.99).float().mean()))
            flat_share = max(flat_share, float(flat.float().mean()))
    return {"dead": dead_share, "saturated": sat_share, "flat": flat_share}


def criterion(name: str) -> nn.Module:
    return {
        "ce": nn.CrossEntropyLoss,
        "bce": nn.BCEWithLogitsLoss,
        "nll": nn.NLLLoss,
        "mse": nn.MSELoss,
        "huber": nn.HuberLoss,
        "smoothl1": nn.SmoothL1Loss,
        "l1": nn.L1Loss,
        "poisson": nn.PoissonNLLLoss,  # log_input=True: the net outputs the log-rate
    }[name]()


def train(run: Run, seed: int):
    """The docs' loop: returns the data check's findings, the doctor's report and the outcome."""
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = run.data(seed)
    regression = run.task == "regression"
    if run.loss in ("ce", "nll") and regression:
        raise ValueError(f"{run.name}: a regression run needs a regression loss")
    bce = run.loss == "bce"
    n_out = 1 if regression or bce else int(max(ytr.max(), yva.max()) + 1)
    checked = Doctor.check_data(Xtr, ytr, Xva, yva, task=run.task)
    Xt, Xv = torch.as_tensor(Xtr), torch.as_tensor(Xva)
    if run.shape is not None:
        Xt, Xv = Xt.reshape(-1, *run.shape), Xv.reshape(-1, *run.shape)
    if regression or bce:
        yt, yv = (torch.as_tensor(v).float().unsqueeze(1) for v in (ytr, yva))
    else:
        yt, yv = torch.as_tensor(ytr).long(), torch.as_tensor(yva).long()
    ds = (
        torch.utils.data.TensorDataset(Xt, yt) if run.dataset is None else run.dataset(Xt, yt, seed)
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=run.batch, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model = run.model(Xtr.shape[1], n_out)
    optimizer = run.optimizer(list(model.parameters()))
    scheduler = None if run.schedule is None else run.schedule(optimizer, len(loader), run.epochs)
    loss_fn = criterion(run.loss)
    finite = np.isfinite(Xtr).all() and np.isfinite(Xva).all()
    doc = Doctor(model, optimizer)
    # sklearn refuses NaN and inf; a user would skip the baseline there
    baseline = doc.fit_baseline(Xtr, ytr, Xva, yva, task=run.task) if finite else None

    def score(out: torch.Tensor, y: torch.Tensor) -> float:
        if regression:
            pred = out.exp() if run.loss == "poisson" else out  # R² of the predicted rate
            return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        if bce:
            return float(((out > 0).float() == y).float().mean())
        return float((out.argmax(1) == y).float().mean())

    o = Outcome(
        task=run.task,
        n_val=len(Xv),
        base=math.nan if baseline is None else baseline.score,
        first_loss=math.nan,
        train_losses=[],
        val_losses=[],
        val_scores=[],
        train_score=math.nan,
        grad_rms=[],
        first_grad_rms=[],
        data=(Xtr, ytr, Xva, yva),
    )
    for epoch in range(run.epochs):
        model.train()
        total, count, busy, batches = 0.0, 0, 0.0, 0
        t_epoch = time.perf_counter()
        for xb, yb in doc.watch(loader):
            t_batch = time.perf_counter()
            loss = loss_fn(model(xb), yb)
            if run.zero_grad:
                optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            grads = weight_grads(model)
            if grads:
                rms = [float(g.pow(2).mean().sqrt()) for g in grads]
                o.grad_rms.append(max(rms, key=lambda v: v if math.isfinite(v) else math.inf))
                o.first_grad_rms.append(rms[0])
            optimizer.step()
            if scheduler is not None and run.per_step_schedule:
                scheduler.step()
            if math.isnan(o.first_loss):
                o.first_loss = float(loss.detach())
            total, count = total + float(loss.detach()) * len(xb), count + len(xb)
            busy, batches = busy + time.perf_counter() - t_batch, batches + 1
        elapsed = time.perf_counter() - t_epoch
        o.waits.append(((elapsed - busy) / elapsed, (elapsed - busy) / max(batches, 1)))
        model.eval()
        with torch.no_grad():
            out_t, out_v = model(Xt), model(Xv)
            val_loss = float(loss_fn(out_v, yv))
            ts, vs = score(out_t, yt), score(out_v, yv)
        if scheduler is not None and not run.per_step_schedule:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss)
            else:
                scheduler.step()
        if epoch == 0:
            o.units.update({f"{k}_first": v for k, v in unit_shares(model, Xt).items()})
        o.train_losses.append(total / max(count, 1))
        o.val_losses.append(val_loss)
        o.val_scores.append(vs)
        o.train_score = ts
        doc.end_epoch(
            train_loss=total / max(count, 1),
            val_loss=val_loss,
            train_metric=ts,
            val_metric=vs,
            val_rows=len(Xv),
        )
    o.units.update({f"{k}_end": v for k, v in unit_shares(model, Xt).items()})
    report = doc.diagnose()
    doc.close()
    return checked, report, o


def main(runs: list[Run], description: str) -> None:
    """The command line of a set: ``runs`` at ``--seeds``, labels or verdicts, the tally."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="print each report")
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="print each run's label check and outcome, not the doctor's verdict",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    board = Scoreboard()
    t_all = time.perf_counter()
    for run in runs:
        if args.only and args.only not in run.name:
            continue
        for seed in args.seeds:
            t0 = time.perf_counter()
            checked, report, o = train(run, seed)
            doubt = label_doubt(run, o)
            scores = o.val_scores
            best = max((s for s in scores if math.isfinite(s)), default=math.nan)
            figures = (
                f"base {o.base:.3f} train {o.train_score:.3f} "
                f"val best {best:.3f} last {scores[-1]:.3f} "
                f"loss {o.first_loss:.3g}->{o.train_losses[-1]:.3g} "
                f"({time.perf_counter() - t0:.1f}s)"
            )
            if args.labels_only:
                label = f"LABEL? ({doubt})" if doubt else "label ok"
                print(f"{run.name[:62]:62s} seed {seed}: {label:24s} {figures}", flush=True)
            else:
                data_problems = [f.kind for f in checked if f.severity in ("warning", "error")]
                problems = list(dict.fromkeys(data_problems + [f.kind for f in report.problems]))
                causes = list(dict.fromkeys(data_problems + [f.kind for f in report.causes]))
                verdict = board.verdict(seed, run.expect, problems, causes, doubt)
                print(
                    f"{run.name[:62]:62s} seed {seed}: {verdict:22s} causes={causes} "
                    f"all={problems} {figures}",
                    flush=True,
                )
            if args.verbose:
                if not args.labels_only:
                    print("  data check:", [(f.kind, f.severity) for f in checked])
                print(
                    f"  train losses {[round(v, 4) for v in o.train_losses]}\n"
                    f"  val losses {[round(v, 4) for v in o.val_losses]}\n"
                    f"  val scores {[round(v, 3) for v in o.val_scores]}\n"
                    f"  units {o.units}, peak grad RMS "
                    f"{max(o.grad_rms, default=math.nan):.3g}, first-layer grad RMS "
                    f"{np.median(o.first_grad_rms) if o.first_grad_rms else math.nan:.3g}, "
                    f"wait share {np.median([s for s, _ in o.waits]):.2f}"
                )
                if not args.labels_only:
                    print(report.summary())
    if not args.labels_only:
        print(board.summary())
    print(f"({time.perf_counter() - t_all:.0f}s)")
