"""The doctor on a fourth held-out set (D): plain PyTorch loops the doctor's developers never saw.

Sets A (``bench/doctor_heldout.py``, session 7), B (``bench/doctor_heldout2.py``, session 13) and
C (``bench/doctor_heldout3.py``, session 17) were written before this one. This set was written in
session 18, without reading the doctor's code (``src/tunelab/diagnose/``), its tests, its
development zoo or the benchmark notes on it: only the README, the user-facing sections of
docs/diagnose.md (the API and the table of finding kinds), set C's script and the run tables of sets
A and B, so as to repeat none of their cases. Its runs differ from those sets and from each other in
data (8x8 digits images, digits z-scored by hand, breast cancer's mean / standard-error / worst
groups as three steps, Gaussian quantiles in 4 and 6 dimensions, 6- and 8-class and 4-class rare-
fault make_classification sets, Poisson counts whose log-rate is Friedman 1, Friedman 2 with its
target in ohms, Friedman 3, a linear make_regression set, wine), architectures (2-D CNNs with max
pooling, depthwise-separable convolutions or a global average pool, an LSTM over feature groups,
residual MLPs with and without BatchNorm, LayerNorm and BatchNorm MLPs, GELU, SiLU, ELU,
LeakyReLU, Tanhshrink, tanh and sigmoid nets, a LogSoftmax head), losses (cross-entropy, NLL,
Poisson NLL on the log-rate, MSE, Huber), optimisers (SGD plain, with momentum and Nesterov,
Adagrad, ASGD, RMSprop with and without momentum, AdamW with amsgrad, Adam, AdamW), schedules
(one-cycle, cosine warm restarts, multi-step, step, a linear warm-up), a Dataset that parses CSV
text per item and batch sizes 4 to full batch (1,400 rows). The loop is set C's, the docs' loop:
``Doctor.check_data`` on the arrays first, then ``Doctor(model, optimizer)``, ``fit_baseline``,
``watch``, ``after_backward`` and ``end_epoch`` with the scores and ``val_rows``. The data check's
warnings and errors count as problems and, being data faults (causes, never consequences), are
ranked before the training report's causes.

Each fault is one a user makes with a setting, with the code or with the data: a one-cycle peak
from an SGD recipe given to AdamW, a loop that never calls ``zero_grad()``, SGD's rate given to
RMSprop with momentum, Adam at 0.3, a MultiStepLR gamma of 10 meant as 0.1, He-initialised residual
blocks without normalisation, a regression target left in ohms, a Tanhshrink net, an all-zero
initialisation, biases filled with a negative constant, weights drawn from U(-1, 1) or N(0, 1),
too big a net for a few noisy rows, AdamW's weight decay given to SGD, a CNN averaged over the
image into four numbers, Adam's rate given to Adagrad, a warm-up copied from a long recipe, raw
units, a day-number column, z-scoring by hand over blank pixels, rare classes, a column built from
the label, records repeated by a join before the split, parsing CSV text per item.

For each run and seed it prints whether the expected kind was found among the problems, whether
it is the root cause, and for healthy runs whether no problem was reported. A too-high learning
rate (and gradients summed over steps by a missing ``zero_grad()``) counts as found when the doctor
names ``diverging_loss`` or ``oscillating_loss``, as in sets A-C.

Labels are checked against each run's own outcome, independently of the doctor, with set C's
checks (``bench/heldout_labels.py``): a healthy run must end within two standard errors of the
quick baseline (or above it) without a clear train-validation gap; a faulty run must show its
fault by a check of its own (a too-high rate: a loss that does not settle low; exploding
gradients: a per-weight gradient RMS above 10 or non-finite while the loss has not run away;
vanishing: a first-layer gradient RMS under 1e-4 with little of the loss gone; dead or saturated
units measured on the training rows with a forward hook of this script; overfitting: validation
clearly falling from its best while training fits; underfitting: well below the baseline on
training and validation rows; slow convergence: little of the loss gone and far below the
baseline; the data faults measured on the arrays, the label in disguise by one column alone
predicting the validation labels; a data bottleneck: this script's own timing of the waits for
batches). A run whose outcome contradicts its label is printed as ``LABEL?`` and not counted.
Seeds 0-2 are the development seeds of the labels: the runs' settings were tuned only to make the
labels unambiguous by these checks, with ``--labels-only`` (which prints each run's label check
and outcome and not the doctor's verdict), and looked at the same way at seeds 3 and 4 (every
label held there, no run changed), never by what the doctor reports. Its first run with the
doctor (seeds 0-2, session 17's final code, after which no run was changed) is its held-out
verdict: right kind 68/78, cause first 65/78, healthy clean 30/30. Session 18 changed the doctor
from that run's misses (docs/diagnose.md, "Session 18"); its fresh seeds start at 5. 26 faulty
and 10 healthy runs, about 115 s for three seeds on one core.

    PYTHONPATH=src python bench/doctor_heldout4.py [--seeds 0 1 2] [--only SUBSTRING] [-v]
    PYTHONPATH=src python bench/doctor_heldout4.py --labels-only [--seeds 3 4]
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from heldout_labels import (  # bench/ is on sys.path
    dead,
    explodes,
    has_nonfinite,
    imbalanced,
    leaks,
    leaky_column,
    lr_unsettled,
    overfits,
    saturated,
    slow,
    split,
    standard_target,
    underfits,
    unscaled,
    vanishes,
    waits,
)
from heldout_loop import Run, main  # bench/ is on sys.path
from sklearn import datasets

LR_TOO_HIGH = ("diverging_loss", "oscillating_loss")


# ---- data a user would load --------------------------------------------------------------------


def digits_images(seed: int):
    """Pixels divided by 16, in [0, 1]: 8x8 images for a Conv2d."""
    X, y = datasets.load_digits(return_X_y=True)
    return split(X / 16.0, y, seed, scale=False)


def digits_flat(seed: int):
    X, y = datasets.load_digits(return_X_y=True)
    return split(X, y, seed)


def digits_z_by_hand(seed: int):
    """Z-scored by hand, (X - mean) / std with the training rows' figures: the pixels that are 0
    in every training image give 0 / 0 (StandardScaler would have kept them at 0)."""
    X, y = datasets.load_digits(return_X_y=True)
    Xtr, ytr, Xva, yva = split(X, y, seed, scale=False)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((Xtr - mu) / sd).astype(np.float32), ytr, ((Xva - mu) / sd).astype(np.float32), yva


def cancer(seed: int):
    """Breast cancer's 30 columns: 10 means, their 10 standard errors, their 10 worst values."""
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return split(X, y.astype(np.int64), seed)


def cancer_raw(seed: int):
    """As measured: areas in square pixels (up to 4,250), smoothness ~0.1, fractal dim ~0.06."""
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return split(X, y.astype(np.int64), seed, scale=False)


def quantiles(classes: int = 3, features: int = 6, n: int = 3000):
    def make(seed: int):
        X, y = datasets.make_gaussian_quantiles(
            n_samples=n, n_features=features, n_classes=classes, random_state=seed
        )
        return split(X, y, seed)

    return make


def classes6(seed: int):
    X, y = datasets.make_classification(
        n_samples=3000,
        n_features=30,
        n_informative=12,
        n_redundant=6,
        n_classes=6,
        n_clusters_per_class=1,
        class_sep=1.0,
        random_state=400 + seed,
    )
    return split(X, y, seed)


def classes8(seed: int):
    X, y = datasets.make_classification(
        n_samples=3000,
        n_features=20,
        n_informative=10,
        n_classes=8,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=800 + seed,
    )
    return split(X, y, seed)


def rare4(seed: int):
    """Four fault types in machine logs, 93% / 4% / 2% / 1% of the rows."""
    X, y = datasets.make_classification(
        n_samples=4000,
        n_features=12,
        n_informative=6,
        n_classes=4,
        n_clusters_per_class=1,
        weights=[0.93, 0.04, 0.02, 0.01],
        class_sep=1.5,
        random_state=900 + seed,
    )
    return split(X, y, seed)


def label_code(seed: int):
    """A 3-class set with a "segment code" column joined from a table that was built from the
    outcome: the class index plus a little noise (the label in disguise)."""
    X, y = datasets.make_classification(
        n_samples=2500,
        n_features=10,
        n_informative=5,
        n_classes=3,
        class_sep=0.8,
        random_state=1200 + seed,
    )
    code = y + np.random.default_rng(seed).normal(0, 0.05, size=len(y))
    return split(np.column_stack([X, code]), y, seed)


def noisy_few(seed: int):
    """300 training rows of a 20-feature binary set, 30% of the labels flipped at random."""
    X, y = datasets.make_classification(
        n_samples=3300,
        n_features=20,
        n_informative=8,
        flip_y=0.3,
        class_sep=1.0,
        random_state=1300 + seed,
    )
    Xtr, ytr, Xva, yva = split(X, y, seed)
    return Xtr[:300], ytr[:300], Xva, yva


def friedman2_few(seed: int):
    """60 training rows of Friedman 2 with heavy noise (30% of the target's spread explained)."""
    X, y = datasets.make_friedman2(n_samples=1000, noise=300.0, random_state=seed)
    Xtr, ytr, Xva, yva = standard_target(*split(X, y, seed))
    return Xtr[:60], ytr[:60], Xva, yva


def regression(seed: int):
    X, y = datasets.make_regression(
        n_samples=2000, n_features=20, n_informative=12, noise=40.0, random_state=seed
    )
    return standard_target(*split(X, y, seed))


def regression_day_number(seed: int):
    """Standardised columns plus the order date as a day number (days since 1970: ~19,000)."""
    X, y = datasets.make_regression(
        n_samples=2000, n_features=8, n_informative=6, noise=10.0, random_state=seed
    )
    Xtr, ytr, Xva, yva = standard_target(*split(X, y, seed))
    rng = np.random.default_rng(seed)
    day = lambda n: (19000 + rng.integers(0, 1100, size=(n, 1))).astype(np.float32)  # noqa: E731
    return np.hstack([Xtr, day(len(Xtr))]), ytr, np.hstack([Xva, day(len(Xva))]), yva


def poisson_counts(seed: int):
    """Counts (rentals per hour, say) whose log-rate is Friedman 1's function / 8: 1 to ~30."""
    X, f = datasets.make_friedman1(n_samples=3000, noise=0.0, random_state=seed)
    y = np.random.default_rng(seed).poisson(np.exp(f / 8)).astype(np.float32)
    return split(X, y, seed)


def friedman2_ohms(seed: int):
    """Standardised inputs, but the target left in ohms (impedance, 0 to ~1,700)."""
    X, y = datasets.make_friedman2(n_samples=2000, noise=30.0, random_state=seed)
    Xtr, ytr, Xva, yva = split(X, y, seed)
    return Xtr, ytr.astype(np.float32), Xva, yva.astype(np.float32)


def friedman3(seed: int):
    X, y = datasets.make_friedman3(n_samples=1500, noise=0.05, random_state=seed)
    return standard_target(*split(X, y, seed))


def friedman3_joined(seed: int):
    """Friedman 3 records each repeated three times by a one-to-many join before the split."""
    X, y = datasets.make_friedman3(n_samples=800, noise=0.05, random_state=seed)
    idx = np.repeat(np.arange(len(y)), 3)
    return standard_target(*split(X[idx], y[idx], seed))


def wine(seed: int):
    X, y = datasets.load_wine(return_X_y=True)
    return split(X, y, seed)


class CsvRows(torch.utils.data.Dataset):
    """A Dataset over the rows as CSV text, parsed with np.genfromtxt in every __getitem__."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, seed: int):
        self.lines = [",".join(f"{v:.7g}" for v in row) for row in X.numpy()]
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        row = np.genfromtxt(io.StringIO(self.lines[i]), delimiter=",", dtype=np.float32)
        return torch.from_numpy(row), self.y[i]


# ---- models a user would write -------------------------------------------------------------------


def mlp(widths, act=nn.ReLU, *, norm=None, init: Callable | None = None, head=None):
    """Linear layers with `act` (and `norm` before it), a linear output, `head` after it."""

    def build(n_in: int, n_out: int) -> nn.Module:
        layers, prev = [], n_in
        for w in widths:
            layers.append(nn.Linear(prev, w))
            if norm is not None:
                layers.append(norm(w))
            layers.append(act())
            prev = w
        layers.append(nn.Linear(prev, n_out))
        if head is not None:
            layers.append(head())
        net = nn.Sequential(*layers)
        if init is not None:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    init(m)
        return net

    return build


class ResidualMLP(nn.Module):
    """A linear stem, `blocks` residual blocks x + W2 relu(W1 norm(x)), a linear head."""

    def __init__(self, n_in: int, n_out: int, width: int, blocks: int, norm=None):
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                norm(width) if norm is not None else nn.Identity(),
                nn.Linear(width, width),
                nn.ReLU(),
                nn.Linear(width, width),
            )
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def residual(width: int = 64, blocks: int = 4, norm=None, init: Callable | None = None):
    def build(n_in: int, n_out: int) -> nn.Module:
        net = ResidualMLP(n_in, n_out, width, blocks, norm)
        if init is not None:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    init(m)
        return net

    return build


def cnn2d(
    channels=(16, 32),
    act=nn.ReLU,
    *,
    separable: bool = False,
    gap: bool = False,
    batch_norm: bool = False,
    conv_bias: float | None = None,
    hidden: int = 64,
):
    """3x3 Conv2d layers on 8x8 images (depthwise 3x3 + pointwise 1x1 after the first when
    `separable`), max-pooling by 2 after each, then a dense head; with `gap`, no pooling but a
    global average over the positions straight into the output layer."""

    def build(n_in: int, n_out: int) -> nn.Module:
        layers, prev, size = [], 1, 8
        for i, c in enumerate(channels):
            if separable and i > 0:
                layers += [nn.Conv2d(prev, prev, 3, padding=1, groups=prev), nn.Conv2d(prev, c, 1)]
            else:
                layers.append(nn.Conv2d(prev, c, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(act())
            if not gap:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            prev = c
        if gap:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(prev, n_out)]
        else:
            layers += [
                nn.Flatten(),
                nn.Linear(prev * size * size, hidden),
                act(),
                nn.Linear(hidden, n_out),
            ]
        net = nn.Sequential(*layers)
        if conv_bias is not None:
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.constant_(m.bias, conv_bias)
        return net

    return build


class Recurrent(nn.Module):
    """An LSTM or GRU over the row's steps; the last step's state into a linear head."""

    def __init__(self, step: int, n_out: int, hidden: int, cell):
        super().__init__()
        self.rnn = cell(step, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def recurrent(hidden: int, cell=nn.LSTM, step: int = 10):
    return lambda n_in, n_out: Recurrent(step, n_out, hidden, cell)


def uniform(a: float):
    def init(m: nn.Module) -> None:
        nn.init.uniform_(m.weight, -a, a)
        nn.init.zeros_(m.bias)

    return init


def normal(std: float):
    def init(m: nn.Module) -> None:
        nn.init.normal_(m.weight, std=std)
        nn.init.zeros_(m.bias)

    return init


def zeros(m: nn.Module) -> None:
    nn.init.zeros_(m.weight)
    nn.init.zeros_(m.bias)


def he(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.zeros_(m.bias)


def bias_fill(value: float):
    """PyTorch's default weights, every bias set to `value`."""
    return lambda m: nn.init.constant_(m.bias, value)


def opt(cls: type[torch.optim.Optimizer], lr: float, **kw):
    return lambda params: cls(params, lr=lr, **kw)


def one_cycle(max_lr: float):
    return lambda o, steps, epochs: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=max_lr, total_steps=steps * epochs
    )


def warm_restarts(first: int, mult: int = 2):
    return lambda o, steps, epochs: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=first, T_mult=mult
    )


def multistep(milestones: list[int], gamma: float):
    return lambda o, steps, epochs: torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma)


def step_lr(every: int, gamma: float):
    return lambda o, steps, epochs: torch.optim.lr_scheduler.StepLR(o, every, gamma)


def linear_warmup(iters: int):
    """LinearLR from 1/1000 of the rate up to it over `iters` steps (stepped per batch)."""
    return lambda o, steps, epochs: torch.optim.lr_scheduler.LinearLR(
        o, start_factor=1e-3, total_iters=iters
    )


RUNS = [
    # ---- faulty: what an expert names as the cause --------------------------------------------
    Run(
        "AdamW with OneCycleLR(max_lr=1.0) from an SGD recipe, quantiles",
        LR_TOO_HIGH,
        quantiles(),
        mlp([64, 64], nn.GELU),
        opt(torch.optim.AdamW, 1e-3),
        epochs=15,
        batch=64,
        schedule=one_cycle(1.0),
        per_step_schedule=True,
        check=lr_unsettled,
    ),
    Run(
        "digits CNN, SGD momentum, the loop never calls zero_grad()",
        LR_TOO_HIGH,
        digits_images,
        cnn2d((8, 16)),
        opt(torch.optim.SGD, 0.01, momentum=0.9),
        epochs=8,
        shape=(1, 8, 8),
        zero_grad=False,
        check=lr_unsettled,
    ),
    Run(
        "RMSprop with momentum 0.9 at SGD's lr 0.05, Poisson counts",
        LR_TOO_HIGH,
        poisson_counts,
        mlp([64, 64], nn.SiLU),
        opt(torch.optim.RMSprop, 0.05, momentum=0.9),
        epochs=15,
        batch=64,
        task="regression",
        loss="poisson",
        check=lr_unsettled,
    ),
    Run(
        "LSTM over breast cancer's mean/se/worst groups, Adam lr 0.3",
        LR_TOO_HIGH,
        cancer,
        recurrent(32),
        opt(torch.optim.Adam, 0.3),
        epochs=20,
        batch=16,
        shape=(3, 10),
        check=lr_unsettled,
    ),
    Run(
        "MultiStepLR with gamma=10 (meant 0.1), Nesterov SGD, digits",
        LR_TOO_HIGH,
        digits_flat,
        mlp([128, 64], nn.ELU),
        opt(torch.optim.SGD, 0.05, momentum=0.9, nesterov=True),
        epochs=18,
        batch=64,
        schedule=multistep([6, 12], 10.0),
        check=lr_unsettled,
    ),
    Run(
        "10 residual blocks, He init, no normalisation, 6-class set",
        "exploding_gradients",
        classes6,
        residual(64, 10, init=he),
        opt(torch.optim.Adam, 1e-3),
        epochs=8,
        batch=64,
        check=explodes,
    ),
    Run(
        "Friedman 2 with the target left in ohms (to ~1,700), MSE, Adam",
        "exploding_gradients",
        friedman2_ohms,
        mlp([64, 64]),
        opt(torch.optim.Adam, 1e-3),
        epochs=15,
        task="regression",
        loss="mse",
        check=explodes,
    ),
    Run(
        "8 Tanhshrink layers of 64 on the 6-class set, SGD momentum",
        "vanishing_gradients",
        classes6,
        mlp([64] * 8, nn.Tanhshrink),
        opt(torch.optim.SGD, 0.05, momentum=0.9),
        epochs=10,
        batch=64,
        check=vanishes,
    ),
    Run(
        "tanh MLP with every weight initialised to zero, digits, Adam",
        "vanishing_gradients",
        digits_flat,
        mlp([128, 64], nn.Tanh, init=zeros),
        opt(torch.optim.Adam, 1e-3),
        epochs=10,
        check=vanishes,
    ),
    Run(
        "digits CNN whose conv biases start at -3, AdamW",
        "dead_relu",
        digits_images,
        cnn2d((16, 32), conv_bias=-3.0),
        opt(torch.optim.AdamW, 1e-3),
        epochs=8,
        shape=(1, 8, 8),
        check=dead,
    ),
    Run(
        "Friedman 3, ReLU MLP with every bias filled with -2, Nesterov SGD",
        "dead_relu",
        friedman3,
        mlp([128, 128], init=bias_fill(-2.0)),
        opt(torch.optim.SGD, 0.01, momentum=0.9, nesterov=True),
        epochs=15,
        task="regression",
        loss="mse",
        check=dead,
    ),
    Run(
        "digits, tanh 2x256 MLP with weights U(-1, 1), Adagrad",
        "saturated_activations",
        digits_flat,
        mlp([256, 256], nn.Tanh, init=uniform(1.0)),
        opt(torch.optim.Adagrad, 0.01),
        epochs=10,
        check=saturated,
    ),
    Run(
        "breast cancer, sigmoid 2x256 MLP with weights N(0, 1), RMSprop",
        "saturated_activations",
        cancer,
        mlp([256, 256], nn.Sigmoid, init=normal(1.0)),
        opt(torch.optim.RMSprop, 1e-3),
        epochs=15,
        batch=16,
        check=saturated,
    ),
    Run(
        "300 rows, 30% labels flipped, 2x256 GELU, AdamW wd 0, 100 epochs",
        "overfitting",
        noisy_few,
        mlp([256, 256], nn.GELU),
        opt(torch.optim.AdamW, 1e-3, weight_decay=0.0),
        epochs=100,
        check=overfits,
    ),
    Run(
        "60 rows of a noisy Friedman 2, 2x512 SiLU, Adam, 150 epochs",
        "overfitting",
        friedman2_few,
        mlp([512, 512], nn.SiLU),
        opt(torch.optim.Adam, 2e-3),
        epochs=150,
        batch=16,
        task="regression",
        loss="mse",
        check=overfits,
    ),
    Run(
        "Nesterov SGD with weight_decay=0.05 (AdamW's value), 8 classes",
        "underfitting",
        classes8,
        mlp([128, 128], nn.SiLU),
        opt(torch.optim.SGD, 0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
        epochs=15,
        check=underfits,
    ),
    Run(
        "digits CNN of 4 channels averaged over the image (global pool)",
        "underfitting",
        digits_images,
        cnn2d((4, 4), nn.SiLU, gap=True),
        opt(torch.optim.Adam, 3e-3),
        epochs=15,
        shape=(1, 8, 8),
        check=underfits,
    ),
    Run(
        "Adagrad at lr 1e-3 (Adam's default) on quantiles, tanh MLP",
        "slow_convergence",
        quantiles(),
        mlp([64, 64], nn.Tanh),
        opt(torch.optim.Adagrad, 1e-3),
        epochs=15,
        batch=64,
        check=slow,
    ),
    Run(
        "separable digits CNN, 10,000-step warm-up in a 400-step run",
        "slow_convergence",
        digits_images,
        cnn2d((16, 32), separable=True),
        opt(torch.optim.Adam, 1e-3),
        epochs=10,
        shape=(1, 8, 8),
        schedule=linear_warmup(10000),
        per_step_schedule=True,
        check=slow,
    ),
    Run(
        "raw breast cancer (areas up to 4,250), GELU MLP, AdamW amsgrad",
        "unscaled_inputs",
        cancer_raw,
        mlp([64, 64], nn.GELU),
        opt(torch.optim.AdamW, 1e-3, amsgrad=True),
        epochs=20,
        batch=16,
        check=unscaled,
    ),
    Run(
        "regression with the order date as a day number (~19,000), Huber",
        "unscaled_inputs",
        regression_day_number,
        mlp([64, 64]),
        opt(torch.optim.Adam, 1e-3),
        epochs=15,
        task="regression",
        loss="huber",
        check=unscaled,
    ),
    Run(
        "digits z-scored by hand (0/0 in the blank pixels), MLP, Adam",
        "nan_or_inf_data",
        digits_z_by_hand,
        mlp([128]),
        opt(torch.optim.Adam, 1e-3),
        epochs=5,
        check=has_nonfinite,
    ),
    Run(
        "4 fault types at 93/4/2/1%, LayerNorm MLP, AdamW",
        "class_imbalance",
        rare4,
        mlp([64, 64], norm=nn.LayerNorm),
        opt(torch.optim.AdamW, 1e-3),
        epochs=10,
        batch=64,
        check=imbalanced,
    ),
    Run(
        "3-class set with a segment code built from the label, SiLU MLP",
        "data_leakage",
        label_code,
        mlp([64, 64], nn.SiLU),
        opt(torch.optim.Adam, 1e-3),
        epochs=15,
        check=leaky_column,
    ),
    Run(
        "Friedman 3 records tripled by a join before the split, Huber",
        "data_leakage",
        friedman3_joined,
        mlp([64, 64], nn.LeakyReLU),
        opt(torch.optim.Adam, 2e-3),
        epochs=15,
        task="regression",
        loss="huber",
        check=leaks,
    ),
    Run(
        "quantiles with each row parsed from CSV text in __getitem__",
        "data_bottleneck",
        quantiles(),
        mlp([64, 64]),
        opt(torch.optim.Adam, 2e-3),
        epochs=4,
        batch=64,
        dataset=CsvRows,
        check=waits,
    ),
    # ---- healthy: an expert would leave these alone -------------------------------------------
    Run(
        "digits, separable GELU CNN, AdamW amsgrad, cosine warm restarts",
        None,
        digits_images,
        cnn2d((16, 32), nn.GELU, separable=True),
        opt(torch.optim.AdamW, 3e-3, amsgrad=True, weight_decay=1e-2),
        epochs=15,
        shape=(1, 8, 8),
        schedule=warm_restarts(5),
    ),
    Run(
        "breast cancer mean/se/worst as 3 steps, LSTM, Adam, batch 16",
        None,
        cancer,
        recurrent(32),
        opt(torch.optim.Adam, 3e-3),
        epochs=20,
        batch=16,
        shape=(3, 10),
    ),
    Run(
        "Poisson counts, SiLU MLP, Adam, Poisson NLL on the log-rate",
        None,
        poisson_counts,
        mlp([64, 64], nn.SiLU),
        opt(torch.optim.Adam, 1e-3),
        epochs=30,
        batch=64,
        task="regression",
        loss="poisson",
    ),
    Run(
        "quantiles, residual MLP with BatchNorm, Nesterov SGD, one-cycle",
        None,
        quantiles(),
        residual(64, 3, norm=nn.BatchNorm1d),
        opt(torch.optim.SGD, 0.05, momentum=0.9, nesterov=True),
        epochs=20,
        batch=64,
        schedule=one_cycle(0.1),
        per_step_schedule=True,
    ),
    Run(
        "wine, LeakyReLU MLP, LogSoftmax and NLLLoss, RMSprop, batch 4",
        None,
        wine,
        mlp([32, 32], nn.LeakyReLU, head=lambda: nn.LogSoftmax(dim=1)),
        opt(torch.optim.RMSprop, 1e-3),
        epochs=20,
        batch=4,
        loss="nll",
    ),
    Run(
        "Friedman 3, LayerNorm GELU MLP, Adagrad, MultiStepLR, MSE",
        None,
        friedman3,
        mlp([64, 64], nn.GELU, norm=nn.LayerNorm),
        opt(torch.optim.Adagrad, 0.05),
        epochs=30,
        task="regression",
        loss="mse",
        schedule=multistep([15, 25], 0.3),
    ),
    Run(
        "8-class set, SiLU MLP, ASGD",
        None,
        classes8,
        mlp([128, 64], nn.SiLU),
        opt(torch.optim.ASGD, 0.1),
        epochs=20,
    ),
    Run(
        "20-feature linear regression, full batch, AdamW amsgrad",
        None,
        regression,
        mlp([64], nn.SiLU),
        opt(torch.optim.AdamW, 1e-2, amsgrad=True),
        epochs=200,
        batch=1400,
        task="regression",
        loss="mse",
    ),
    Run(
        "2-class quantiles in 4-d, tanh MLP, RMSprop with momentum",
        None,
        quantiles(2, 4, 2000),
        mlp([64, 64], nn.Tanh),
        opt(torch.optim.RMSprop, 1e-4, momentum=0.9),
        epochs=30,
    ),
    Run(
        "6-class set, ELU MLP with BatchNorm, SGD momentum, StepLR",
        None,
        classes6,
        mlp([128, 64], nn.ELU, norm=nn.BatchNorm1d),
        opt(torch.optim.SGD, 0.05, momentum=0.9),
        epochs=25,
        batch=128,
        schedule=step_lr(10, 0.3),
    ),
]


# ---- the loop ----------------------------------------------------------------------------------


if __name__ == "__main__":
    main(RUNS, __doc__.splitlines()[0])
