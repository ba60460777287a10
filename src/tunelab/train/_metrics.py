"""Metrics: cheap on-device ones per epoch, sklearn's full report for a final evaluation.

Per epoch the trainer needs loss, accuracy and macro precision/recall/F1 (or MSE/MAE/R2) on
the validation set. They come from one confusion matrix built with ``bincount`` on the device
and copied to the host once, with exactly sklearn's definitions (macro over the labels present
in targets or predictions, ``zero_division=0``); the tests check they equal sklearn's values.
The final evaluation uses :mod:`sklearn.metrics` itself, including the per-class numbers, the
confusion matrix and the classification report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from sklearn import metrics as skm

CLASSIFICATION_METRICS = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")
REGRESSION_METRICS = ("loss", "mse", "mae", "r2")


def metric_names(task: str, *, has_val: bool = True) -> list[str]:
    """The per-epoch metric names a fit of ``task`` produces."""
    names = ["epoch", "train_loss", "lr", "epoch_time_s"]
    if has_val:
        per = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        names += [f"val_{m}" for m in per]
    return names


def predicted_classes(outputs: torch.Tensor) -> torch.Tensor:
    """Class indices from logits; one logit per row means a binary task (logit > 0)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(-1) > 0).to(torch.int64)
    return outputs.argmax(dim=-1)


def class_probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Probabilities from logits (softmax, or sigmoid for a single logit)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        p1 = torch.sigmoid(outputs.reshape(-1).float())
        return torch.stack([1 - p1, p1], dim=1)
    return torch.softmax(outputs.float(), dim=-1)


def regression_values(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if outputs.ndim == targets.ndim + 1 and outputs.shape[-1] == 1:
        return outputs.squeeze(-1)
    return outputs


def confusion(
    pred: torch.Tensor, target: torch.Tensor, k: int, *, target_offsets: torch.Tensor | None = None
) -> torch.Tensor:
    """``k x k`` counts, rows = true class, columns = predicted class (on the device).

    ``target_offsets``: ``target * k`` computed once by a caller that scores the same targets
    every epoch."""
    offsets = target * k if target_offsets is None else target_offsets
    return torch.bincount(offsets + pred, minlength=k * k).reshape(k, k)


def scores_from_confusion(cm: Any) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 exactly as sklearn computes them.

    ``cm`` is a ``k x k`` matrix (nested lists or an array), rows = true class.
    """
    rows = cm.tolist() if hasattr(cm, "tolist") else cm
    return scores_from_counts([x for row in rows for x in row], len(rows))


def scores_from_counts(flat: Sequence[float], k: int) -> dict[str, float]:
    """:func:`scores_from_confusion` of a ``k x k`` confusion matrix flattened row by row.

    Plain Python on a 10 x 10 matrix takes a fifth of the time of the dozen numpy calls it
    replaces, and this runs every epoch. The counts may be ints or whole floats: every sum is
    exact and every ratio is one correctly rounded division, so both give the same floats.
    """
    tp = flat[:: k + 1]
    actual = [sum(flat[i * k : (i + 1) * k]) for i in range(k)]
    predicted = [sum(flat[j::k]) for j in range(k)]
    precisions, recalls, f1s = [], [], []
    for t, p, a in zip(tp, predicted, actual, strict=True):
        if p + a == 0:  # a class in neither targets nor predictions is left out of the means
            continue
        precisions.append(t / p if p > 0 else 0.0)
        recalls.append(t / a if a > 0 else 0.0)
        f1s.append(2 * t / (p + a))  # 2tp / (2tp + fp + fn)
    total = sum(actual)
    return {
        "accuracy": sum(tp) / total if total else 0.0,
        "precision_macro": sum(precisions) / len(precisions) if precisions else 0.0,
        "recall_macro": sum(recalls) / len(recalls) if recalls else 0.0,
        "f1_macro": sum(f1s) / len(f1s) if f1s else 0.0,
    }


def regression_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE, MAE and R2 (uniform average over outputs) computed on the device, read once."""
    pred, target = pred.double().reshape(len(target), -1), target.double().reshape(len(target), -1)
    err = pred - target
    ss_res = (err**2).sum(dim=0)
    ss_tot = ((target - target.mean(dim=0)) ** 2).sum(dim=0)
    # sklearn's force_finite: a constant target scores 1 when predicted exactly, else 0.
    r2 = torch.where(
        ss_tot > 0,
        1 - ss_res / ss_tot.clamp(min=1e-300),
        torch.where(ss_res == 0, 1.0, 0.0).to(ss_res.dtype),
    )
    values = torch.stack([(err**2).mean(), err.abs().mean(), r2.mean()]).tolist()
    return {"mse": values[0], "mae": values[1], "r2": values[2]}


def epoch_scores(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    loss: torch.Tensor,
    task: str,
    k: int,
    *,
    target_offsets: torch.Tensor | None = None,
) -> dict[str, float]:
    """The per-epoch metrics of one split (unprefixed names), one host transfer.

    ``target_offsets`` is ``targets * max(k, 2)``, for a caller that scores the same targets
    every epoch and computes it once.
    """
    if task == "classification":
        k = max(k, 2)
        cm = confusion(predicted_classes(outputs), targets, k, target_offsets=target_offsets)
        if cm.device.type == "cpu":
            # On the CPU a read is a copy, not a device sync: two reads cost fewer ops than
            # packing the loss and the counts into one tensor.
            return {"loss": loss.item(), **scores_from_counts(cm.reshape(-1).tolist(), k)}
        return packed_scores(loss, cm, k)
    scores = regression_scores(regression_values(outputs.float(), targets), targets)
    return {"loss": float(loss.detach()), **scores}


def packed_scores(loss: torch.Tensor, counts: torch.Tensor, k: int) -> dict[str, float]:
    """Loss and scores from the ``k x k`` ``counts`` (flat or not) in one device-to-host
    transfer (on a GPU each read is a sync); the counts are exact in float64."""
    host = torch.cat([loss.detach().double().reshape(1), counts.reshape(-1).double()]).tolist()
    return {"loss": host[0], **scores_from_counts(host[1:], k)}


@dataclass
class Evaluation:
    """A full evaluation of one split: flat ``metrics`` plus the classification details."""

    split: str
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    classification_report: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix,
            "classification_report": self.classification_report,
        }


def full_evaluation(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    loss: float,
    *,
    task: str,
    classes: list[str],
    split: str,
) -> Evaluation:
    """sklearn's metrics for ``split``; names are prefixed with the split (``test_f1_macro``)."""
    p = f"{split}_"
    if task != "classification":
        y = targets.cpu().numpy()
        pred = regression_values(outputs.float(), targets).cpu().numpy()
        metrics = {
            p + "loss": loss,
            p + "mse": float(skm.mean_squared_error(y, pred)),
            p + "mae": float(skm.mean_absolute_error(y, pred)),
            p + "r2": float(skm.r2_score(y, pred)),
        }
        return Evaluation(split, metrics)
    y = targets.cpu().numpy()
    pred = predicted_classes(outputs).cpu().numpy()
    names = list(classes) or [str(i) for i in range(int(max(y.max(), pred.max())) + 1)]
    labels = list(range(len(names)))
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, average="macro", zero_division=0
    )
    metrics = {
        p + "loss": loss,
        p + "accuracy": float(skm.accuracy_score(y, pred)),
        p + "precision_macro": float(precision),
        p + "recall_macro": float(recall),
        p + "f1_macro": float(f1),
    }
    per_p, per_r, per_f, support = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(per_p[i]),
            "recall": float(per_r[i]),
            "f1": float(per_f[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    cm = skm.confusion_matrix(y, pred, labels=labels)
    report = skm.classification_report(
        y, pred, labels=labels, target_names=[str(n) for n in names], zero_division=0, digits=4
    )
    return Evaluation(split, metrics, per_class, cm.tolist(), report)
