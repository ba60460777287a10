"""The doctor on held-out runs: plain PyTorch loops written from docs/diagnose.md, not the zoo.

The zoo (``tests/diagnose/zoo.py``, ``bench/doctor_zoo.py``) is where the doctor's rules are
developed, so its figures are not a held-out verdict. These runs were written separately (session
7), as a new user writes them from the README and docs/diagnose.md: their own data sets (sklearn
generators and bundled sets the zoo does not use, or uses differently), architectures, optimisers
and faults, and the loop of the docs (``Doctor(model, optimizer)``, ``watch``, ``after_backward``,
``end_epoch`` with the scores and ``val_rows``, ``fit_baseline``). Nothing here is imported by the
doctor's tests, and no rule may be tuned on it: a change made after looking at these runs turns
them into development runs, and the verdict then needs new ones.

For each case and seed it prints whether the expected kind was found among the problems, whether
it is the root cause (``report.causes[0]``), and for healthy runs whether no problem was reported.
A run whose learning rate is too high counts as found when the doctor names either of the two
kinds that prescribe a lower rate (``diverging_loss`` or ``oscillating_loss``): which of the two a
run shows depends on the seed, and the cause an expert names is the same.

The labels are checked against the runs' own outcomes, independently of the doctor: a healthy
run must end within two standard errors of the quick baseline (or above it), with a final
train-validation gap under 0.10 that is either within three standard errors (plus 0.02) or
comes with validation still within two standard errors of its best; a run whose outcome
contradicts its label is marked ``LABEL?`` (and should be fixed, not counted).

    PYTHONPATH=src python bench/doctor_heldout.py [--seeds 0 1 2] [--only SUBSTRING] [-v]
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
from heldout_labels import split  # bench/ is on sys.path
from seed_tally import Scoreboard, healthy_label_doubt  # bench/ is on sys.path
from sklearn import datasets
from sklearn.model_selection import train_test_split

from tunelab.diagnose import Doctor


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
    images: bool = False
    extra: dict = field(default_factory=dict)


# ---- data a user would load --------------------------------------------------------------------


def classification(n=1500, features=20, informative=8, classes=3, **kw):
    def make(seed: int):
        X, y = datasets.make_classification(
            n_samples=n,
            n_features=features,
            n_informative=informative,
            n_redundant=2,
            n_classes=classes,
            random_state=1000 + seed,
            **kw,
        )
        return split(X, y, seed)

    return make


def wine_raw(seed: int):
    X, y = datasets.load_wine(return_X_y=True)
    return split(X, y, seed, scale=False)


def blobs(seed: int):
    X, y = datasets.make_blobs(n_samples=1200, centers=5, n_features=6, random_state=seed)
    return split(X, y, seed)


def quantiles(seed: int):
    X, y = datasets.make_gaussian_quantiles(
        n_samples=1500, n_features=4, n_classes=2, random_state=seed
    )
    return split(X, y, seed)


def moons(seed: int):
    X, y = datasets.make_moons(n_samples=1200, noise=0.25, random_state=seed)
    return split(X, y, seed)


def friedman2(seed: int):
    X, y = datasets.make_friedman2(n_samples=1500, noise=10.0, random_state=seed)
    Xtr, ytr, Xva, yva = split(X, y, seed)
    mu, sd = ytr.mean(), ytr.std()
    return Xtr, ((ytr - mu) / sd).astype(np.float32), Xva, ((yva - mu) / sd).astype(np.float32)


def friedman1_raw(seed: int):
    """Features on scales from 1 to 1e4 with offsets, as raw sensor columns come."""
    X, y = datasets.make_friedman1(n_samples=1500, n_features=8, noise=1.0, random_state=seed)
    X = X * np.logspace(0, 4, X.shape[1]) + np.linspace(0, 5000, X.shape[1])
    Xtr, ytr, Xva, yva = split(X, y, seed, scale=False)
    mu, sd = ytr.mean(), ytr.std()
    return Xtr, ((ytr - mu) / sd).astype(np.float32), Xva, ((yva - mu) / sd).astype(np.float32)


def friedman1(seed: int):
    X, y = datasets.make_friedman1(n_samples=1500, n_features=8, noise=1.0, random_state=seed)
    Xtr, ytr, Xva, yva = split(X, y, seed)
    mu, sd = ytr.mean(), ytr.std()
    return Xtr, ((ytr - mu) / sd).astype(np.float32), Xva, ((yva - mu) / sd).astype(np.float32)


def wine(seed: int):
    X, y = datasets.load_wine(return_X_y=True)
    return split(X, y, seed)


def digits_flat(seed: int):
    X, y = datasets.load_digits(return_X_y=True)
    return split(X, y, seed)


def cancer(seed: int):
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return split(X, y, seed)


def digits_images(seed: int):
    X, y = datasets.load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X / 16.0, y, test_size=0.3, random_state=seed, stratify=y)
    return Xtr.astype(np.float32), ytr, Xva.astype(np.float32), yva


def with_nans(make, every: int = 30):
    def data(seed: int):
        Xtr, ytr, Xva, yva = make(seed)
        Xtr = Xtr.copy()
        Xtr[::every, 1] = np.nan
        return Xtr, ytr, Xva, yva

    return data


def few_rows(make, rows: int):
    def data(seed: int):
        Xtr, ytr, Xva, yva = make(seed)
        return Xtr[:rows], ytr[:rows], Xva, yva

    return data


# ---- models a user would write -------------------------------------------------------------------


def mlp(widths, act=nn.ReLU, *, dropout=0.0, bn=False, init: Callable | None = None):
    def build(n_in: int, n_out: int) -> nn.Module:
        layers, prev = [], n_in
        for w in widths:
            layers.append(nn.Linear(prev, w))
            if bn:
                layers.append(nn.BatchNorm1d(w))
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev = w
        layers.append(nn.Linear(prev, n_out))
        net = nn.Sequential(*layers)
        if init is not None:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    init(m)
        return net

    return build


def cnn(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, n_out),
    )


def pooled_cnn(n_in: int, n_out: int) -> nn.Module:
    """Pooled to 2x2 right after the convolutions: too little left to tell the digits apart."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128, n_out),
    )


def normal_std2(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, std=2.0)


def big_normal(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, std=1.2)


def negative_bias(m: nn.Linear) -> None:
    nn.init.constant_(m.bias, -3.0)


def adam(lr, **kw):
    return lambda params: torch.optim.Adam(params, lr=lr, **kw)


def sgd(lr, **kw):
    return lambda params: torch.optim.SGD(params, lr=lr, **kw)


LR_TOO_HIGH = ("diverging_loss", "oscillating_loss")

RUNS = [
    # ---- faulty: what an expert names as the cause --------------------------------------------
    Run(
        "SGD at lr 8 on a 20-feature MLP",
        LR_TOO_HIGH,
        classification(),
        mlp([64, 64]),
        sgd(8.0),
        epochs=15,
    ),
    Run(
        "raw wine features (proline ~1000) into an MLP",
        "unscaled_inputs",
        wine_raw,
        mlp([32, 32]),
        adam(1e-3),
        epochs=40,
        batch=16,
    ),
    Run(
        "7 ReLU layers initialised with std 1.2",
        "exploding_gradients",
        classification(),
        mlp([128] * 7, init=big_normal),
        sgd(1e-3),
        epochs=15,
    ),
    Run(
        "9 sigmoid layers, SGD",
        "vanishing_gradients",
        moons,
        mlp([32] * 9, nn.Sigmoid),
        sgd(0.05),
        epochs=20,
    ),
    Run(
        "hidden biases at -3 on blobs",
        "dead_relu",
        blobs,
        mlp([64, 64], init=negative_bias),
        adam(1e-3),
        epochs=20,
    ),
    Run(
        "90 training rows, 2x512 MLP, 80 epochs",
        "overfitting",
        few_rows(classification(features=40, informative=5), 90),
        mlp([512, 512]),
        adam(1e-3),
        epochs=80,
        batch=16,
    ),
    Run(
        "a linear model on Gaussian quantiles",
        "underfitting",
        quantiles,
        mlp([]),
        adam(1e-2),
        epochs=30,
    ),
    Run(
        "Adam at lr 1e-6 on breast cancer",
        "slow_convergence",
        cancer,
        mlp([64, 64]),
        adam(1e-6),
        epochs=25,
    ),
    Run(
        "NaN in every 30th row of one feature",
        "nan_or_inf_data",
        with_nans(classification()),
        mlp([64]),
        adam(1e-3),
        epochs=10,
    ),
    Run(
        "a 96/4 binary problem",
        "class_imbalance",
        classification(n=3000, classes=2, weights=[0.96, 0.04]),
        mlp([32, 32]),
        adam(1e-3),
        epochs=15,
    ),
    Run(
        "SGD with momentum 0.9 at lr 0.8 on moons",
        LR_TOO_HIGH,
        moons,
        mlp([64, 64]),
        sgd(0.8, momentum=0.9),
        epochs=30,
        batch=16,
    ),
    Run(
        "digits images, CNN pooled to 2x2 before its head",
        "underfitting",
        digits_images,
        pooled_cnn,
        adam(2e-3),
        epochs=12,
        images=True,
    ),
    # added after the first rule change made on these runs (session 7): never run before it
    Run(
        "Adam at lr 0.5 on blobs",
        LR_TOO_HIGH,
        blobs,
        mlp([64, 64]),
        adam(0.5),
        epochs=20,
    ),
    Run(
        "RMSprop at lr 0.3 on breast cancer",
        LR_TOO_HIGH,
        cancer,
        mlp([32, 32]),
        lambda p: torch.optim.RMSprop(p, lr=0.3),
        epochs=20,
        batch=16,
    ),
    Run(
        "friedman1 regression on raw columns (scales 1 to 1e4)",
        "unscaled_inputs",
        friedman1_raw,
        mlp([64, 64]),
        adam(1e-3),
        epochs=30,
        task="regression",
    ),
    Run(
        "a 2-unit bottleneck on 10-class digits",
        "underfitting",
        digits_flat,
        mlp([2]),
        adam(1e-2),
        epochs=30,
    ),
    Run(
        "6 tanh layers with weights of std 2",
        "saturated_activations",
        moons,
        mlp([64] * 6, nn.Tanh, init=normal_std2),
        sgd(0.01),
        epochs=20,
    ),
    # ---- healthy: an expert would leave these alone -------------------------------------------
    Run(
        "6000-row 20-feature set, 64-64 ReLU MLP, Adam",
        None,
        classification(n=6000),
        mlp([64, 64]),
        adam(1e-3),
        epochs=12,
        batch=64,
    ),
    Run(
        "blobs, ELU MLP, RMSprop",
        None,
        blobs,
        mlp([32, 32], nn.ELU),
        lambda p: torch.optim.RMSprop(p, lr=1e-3),
        epochs=20,
    ),
    Run(
        "moons, tanh MLP, SGD with momentum",
        None,
        moons,
        mlp([32, 32], nn.Tanh),
        sgd(0.05, momentum=0.9),
        epochs=40,
    ),
    Run(
        "breast cancer, MLP with dropout, AdamW",
        None,
        cancer,
        mlp([64], dropout=0.2),
        lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2),
        epochs=30,
    ),
    Run(
        "friedman2 regression, SiLU MLP, Adam, MSE",
        None,
        friedman2,
        mlp([64, 64], nn.SiLU),
        adam(1e-3),
        epochs=40,
        task="regression",
    ),
    Run(
        "digits images, 2-conv CNN with max pooling, Adam",
        None,
        digits_images,
        cnn,
        adam(2e-3),
        epochs=15,
        images=True,
    ),
    Run(
        "6000-row 20-feature set, batch-norm MLP, Nesterov SGD",
        None,
        classification(n=6000),
        mlp([64, 64], bn=True),
        sgd(0.02, momentum=0.9, nesterov=True),
        epochs=12,
        batch=64,
    ),
    Run(
        "Gaussian quantiles, 3-layer MLP, Adam, batch 128",
        None,
        quantiles,
        mlp([64, 64, 64]),
        adam(3e-3),
        epochs=40,
        batch=128,
    ),
    # added after the first rule change made on these runs (session 7): never run before it
    Run(
        "wine, 2-layer MLP, Adam",
        None,
        wine,
        mlp([32, 32]),
        adam(3e-3),
        epochs=40,
        batch=16,
    ),
    Run(
        "friedman1 regression, ReLU MLP, SGD with momentum, MSE",
        None,
        friedman1,
        mlp([64, 64]),
        sgd(0.01, momentum=0.9),
        epochs=40,
        task="regression",
    ),
    Run(
        "digits, 128-unit MLP, Adagrad",
        None,
        digits_flat,
        mlp([128]),
        lambda p: torch.optim.Adagrad(p, lr=0.05),
        epochs=20,
    ),
]


def train(run: Run, seed: int) -> tuple[object, list[float], float, float, int]:
    """The docs' loop: returns the doctor's report, the validation scores per epoch, the last
    training score, the quick baseline's score (nan without one) and the validation rows."""
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = run.data(seed)
    regression = run.task == "regression"
    n_out = 1 if regression else int(max(ytr.max(), yva.max()) + 1)
    doc_baseline = (Xtr, ytr, Xva, yva)
    Xt, Xv = torch.as_tensor(Xtr), torch.as_tensor(Xva)
    if run.images:
        Xt, Xv = Xt.reshape(-1, 1, 8, 8), Xv.reshape(-1, 1, 8, 8)
    yt = torch.as_tensor(ytr).float().unsqueeze(1) if regression else torch.as_tensor(ytr).long()
    yv = torch.as_tensor(yva).float().unsqueeze(1) if regression else torch.as_tensor(yva).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(Xt, yt),
        batch_size=run.batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = run.model(Xtr.shape[1], n_out)
    optimizer = run.optimizer(list(model.parameters()))
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    # sklearn refuses NaN; a user would skip the baseline there
    baseline_data = doc_baseline if np.isfinite(Xtr).all() else None
    doc = Doctor(model, optimizer)
    baseline = None if baseline_data is None else doc.fit_baseline(*baseline_data, task=run.task)

    def score(out: torch.Tensor, y: torch.Tensor) -> float:
        if regression:
            return float(1 - ((out - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        return float((out.argmax(1) == y).float().mean())

    scores, ts = [], math.nan
    for _ in range(run.epochs):
        model.train()
        total, count = 0.0, 0
        for xb, yb in doc.watch(loader):
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            optimizer.step()
            total, count = total + float(loss.detach()) * len(xb), count + len(xb)
        model.eval()
        with torch.no_grad():
            out_t, out_v = model(Xt), model(Xv)
            val_loss = float(loss_fn(out_v, yv))
            ts, vs = score(out_t, yt), score(out_v, yv)
        scores.append(vs)
        doc.end_epoch(
            train_loss=total / max(count, 1),
            val_loss=val_loss,
            train_metric=ts,
            val_metric=vs,
            val_rows=len(Xv),
        )
    report = doc.diagnose()
    doc.close()
    return report, scores, ts, math.nan if baseline is None else baseline.score, len(Xv)


def label_doubt(run: Run, scores: list[float], train_score: float, base: float, n: int) -> str:
    """Why the run's outcome contradicts a healthy label ("" when it does not)."""
    if run.expect is not None or not scores:
        return ""
    return healthy_label_doubt(scores, train_score, base, n, regression=run.task == "regression")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="print each report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    board = Scoreboard()
    for run in RUNS:
        if args.only and args.only not in run.name:
            continue
        for seed in args.seeds:
            t0 = time.perf_counter()
            report, scores, train_score, base, n_val = train(run, seed)
            problems = [f.kind for f in report.problems]
            causes = [f.kind for f in report.causes]
            doubt = label_doubt(run, scores, train_score, base, n_val)
            verdict = board.verdict(seed, run.expect, problems, causes, doubt)
            best = max((s for s in scores if math.isfinite(s)), default=math.nan)
            print(
                f"{run.name[:52]:52s} seed {seed}: {verdict:22s} causes={causes} all={problems} "
                f"base {base:.3f} train {train_score:.3f} "
                f"val best {best:.3f} last {scores[-1]:.3f} ({time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
            if args.verbose:
                print(report.summary())
    print(board.summary())


if __name__ == "__main__":
    main()
