"""The held-out sets' shared label checks: each says, from a run's own outcome and never from the
doctor, why the run does not show the fault it is labelled with ("" when it does). Sets B
(``doctor_heldout2.py``) and C (``doctor_heldout3.py``) check their labels with the same rules;
``o`` is either set's ``Outcome`` (the script's own measurements of the run)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from seed_tally import healthy_label_doubt  # bench/ is on sys.path
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn


def split(X: np.ndarray, y: np.ndarray, seed: int, *, scale: bool = True, val: float = 0.3):
    stratify = y if y.dtype.kind in "iu" else None
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=val, random_state=seed, stratify=stratify)
    if scale:
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xva = scaler.transform(Xtr), scaler.transform(Xva)
    return Xtr.astype(np.float32), ytr, Xva.astype(np.float32), yva


def standard_target(Xtr, ytr, Xva, yva):
    mu, sd = ytr.mean(), ytr.std()
    return Xtr, ((ytr - mu) / sd).astype(np.float32), Xva, ((yva - mu) / sd).astype(np.float32)


def se_of(score: float, n: int) -> float:
    return math.sqrt(max(score * (1 - score), 0.01) / n)


def lr_unsettled(o: Any) -> str:
    """A too-high rate whose loss does not settle low: it goes non-finite, ends above half its
    start, is thrown back to 1.5x its best epoch in the last third of the epochs, or the run ends
    far below what the data allow."""
    tl = o.train_losses
    if not all(math.isfinite(v) for v in [*tl, o.first_loss]):
        return ""
    if tl[-1] > 0.5 * o.first_loss:
        return ""
    if any(tl[i] > 1.5 * min(tl[:i]) for i in range(max(1, 2 * len(tl) // 3), len(tl))):
        return ""
    last = o.val_scores[-1]
    margin = 0.1 if o.task == "regression" else max(0.1, 4 * se_of(last, o.n_val))
    if math.isfinite(o.base) and last < o.base - margin:
        return ""
    return f"loss settled at {tl[-1]:.3g} (start {o.first_loss:.3g}), val {last:.3f}"


def vanishes(o: Any) -> str:
    g = [v for v in o.first_grad_rms if math.isfinite(v)]
    late = float(np.median(g[len(g) // 2 :])) if g else math.nan
    lost = 1 - o.train_losses[-1] / o.first_loss
    if late < 1e-4 and lost < 0.25:
        return ""
    return f"first-layer gradient RMS {late:.2e}, {lost:.0%} of the loss gone"


def dead(o: Any) -> str:
    share = o.units.get("dead_end", 0.0)
    return "" if share > 0.5 else f"at most {share:.0%} of a ReLU layer's units dead"


def saturated(o: Any) -> str:
    share, flat = o.units.get("saturated_first", 0.0), o.units.get("flat_first", 0.0)
    if share > 0.5 or flat > 0.6:
        return ""
    return f"at most {share:.0%} of a tanh/sigmoid layer's units, {flat:.0%} of its outputs flat"


def overfits(o: Any) -> str:
    """Validation clearly worse than at its best (score and loss) while training fits better."""
    scores, losses = o.val_scores, o.val_losses
    best, last = max(scores), scores[-1]
    if o.task == "regression":
        fell, gap = best - last > 0.05, o.train_score - last > 0.2
    else:
        fell = best - last > 2 * math.sqrt(2) * se_of(best, o.n_val)
        gap = o.train_score - last > 0.1
    rose = losses[-1] > 1.3 * min(losses)
    if fell and gap and rose:
        return ""
    return f"val {best:.3f} -> {last:.3f}, val loss {min(losses):.3g} -> {losses[-1]:.3g}"


def underfits(o: Any) -> str:
    if o.units.get("dead_end", 0.0) > 0.5:
        return f"{o.units['dead_end']:.0%} of a ReLU layer's units dead"
    last = o.val_scores[-1]
    margin = 0.05 if o.task == "regression" else max(0.05, 3 * se_of(last, o.n_val))
    if last < o.base - margin and o.train_score < o.base - margin:
        return ""
    return f"val {last:.3f}, train {o.train_score:.3f}, baseline {o.base:.3f}"


def slow(o: Any) -> str:
    lost = 1 - o.train_losses[-1] / o.first_loss
    if lost < 0.2 and o.val_scores[-1] < o.base - 0.1:
        return ""
    return f"{lost:.0%} of the loss gone, val {o.val_scores[-1]:.3f}"


def unscaled(o: Any) -> str:
    rms = np.sqrt((o.data[0].astype(np.float64) ** 2).mean(0))
    typical = float(np.median(rms))
    if typical > 20 or rms.max() > 50 * typical:
        return ""
    return f"feature RMS median {typical:.3g}, largest {rms.max():.3g}"


def has_nonfinite(o: Any) -> str:
    return "" if not np.isfinite(o.data[0]).all() else "every training value finite"


def imbalanced(o: Any) -> str:
    counts = np.bincount(o.data[1])
    return "" if counts.max() > 10 * counts.min() else f"class counts {counts.tolist()}"


def weight_grads(model: nn.Module) -> list[torch.Tensor]:
    return [
        p.grad
        for name, p in model.named_parameters()
        if p.grad is not None and p.dim() >= 2 and "weight" in name
    ]


def label_doubt(run: Any, o: Any) -> str:
    """Why the run's outcome contradicts its label ("" when it does not)."""
    if run.expect is not None:
        return run.check(o) if run.check is not None else ""
    scores = o.val_scores
    if not scores or not all(math.isfinite(s) for s in scores):
        return "non-finite scores"
    return healthy_label_doubt(
        scores, o.train_score, o.base, o.n_val, regression=run.task == "regression"
    )


def explodes(o: Any) -> str:
    """Gradients blown up while the loss itself has not run away (else the rate is the fault)."""
    peak = max((g for g in o.grad_rms if math.isfinite(g)), default=math.inf)
    if not (any(not math.isfinite(g) for g in o.grad_rms) or peak > 10):
        return f"largest per-weight gradient RMS {peak:.3g}"
    if not all(math.isfinite(v) for v in o.train_losses) or o.train_losses[-1] > 3 * o.first_loss:
        return f"the loss ran away ({o.first_loss:.3g} -> {o.train_losses[-1]:.3g})"
    return ""


def leaks(o: Any) -> str:
    """Over 20% of the validation rows exact copies (to 1e-6) of a training row."""
    Xtr, Xva = o.data[0].astype(np.float64), o.data[2].astype(np.float64)
    d = ((Xva[:, None, :] - Xtr[None, :, :]) ** 2).sum(-1).min(1) ** 0.5
    share = float((d < 1e-6 * (1 + np.abs(Xtr).max())).mean())
    return "" if share > 0.2 else f"{share:.0%} of val rows copies of a training row"


def waits(o: Any) -> str:
    """Most of each epoch spent waiting for batches (the script's timing: the epoch's time
    minus the time from a batch's arrival to the end of its step), > 2 ms per batch."""
    share = float(np.median([s for s, _ in o.waits]))
    per_batch = float(np.median([b for _, b in o.waits]))
    if share > 0.6 and per_batch > 0.002:
        return ""
    return f"waiting {share:.0%} of the loop, {per_batch * 1e3:.2f} ms per batch"


def leaky_column(o: Any) -> str:
    """One column alone gives the label away: a nearest-neighbour rule on that column only,
    fitted on the training rows, scores >= 0.98 on the validation rows (accuracy, or R² for a
    regression): the label in disguise (target leakage)."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    Xtr, ytr, Xva, yva = o.data
    best = -math.inf
    for j in range(Xtr.shape[1]):
        knn = KNeighborsRegressor(1) if o.task == "regression" else KNeighborsClassifier(1)
        knn.fit(Xtr[:, j : j + 1], ytr)
        best = max(best, float(knn.score(Xva[:, j : j + 1], yva)))
    return "" if best >= 0.98 else f"the best single column scores {best:.3f}"
