"""Validation and evaluation, as a mixin of :class:`~tunelab.train.Trainer`: outputs in
evaluation batches, the per-epoch validation scores, ``predict``, ``evaluation``, ``evaluate``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn as nn

from ._losses import build_loss
from ._metrics import Evaluation, epoch_scores, full_evaluation


class EvaluationMixin:
    """Needs ``config``, ``plan`` (during a fit) and ``bundle``."""

    @torch.no_grad()
    def _outputs(self, model: nn.Module, X: torch.Tensor, *, restore: bool = True) -> torch.Tensor:
        was_training = model.training
        model.eval()
        outputs = self._eval_forward(model, X)
        if restore:
            model.train(was_training)
        return outputs

    def _eval_forward(self, model: nn.Module, X: torch.Tensor) -> torch.Tensor:
        """``model``'s float outputs for ``X`` in evaluation batches (call under no_grad)."""
        bs = self._eval_batch_size()
        autocast = self.plan.autocast if self.plan is not None else contextlib.nullcontext
        if autocast is contextlib.nullcontext and len(X) <= bs:
            outputs = model(X)  # one batch in fp32 (the usual validation set): no context
        else:
            with autocast():
                outs = [model(X[i : i + bs]) for i in range(0, len(X), bs)]
            outputs = torch.cat(outs) if len(outs) > 1 else outs[0]
        return outputs if outputs.dtype == torch.float32 else outputs.float()

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        # No switch back to train mode: the next epoch starts with model.train() anyway, and
        # each switch walks every submodule.
        plan = self.plan
        plan.eval_forward.eval()
        outputs = self._eval_forward(plan.eval_forward, plan.Xv)
        loss = plan.loss_fn(outputs, plan.yv)
        scores = epoch_scores(
            outputs,
            plan.yv,
            loss,
            self.bundle.task,
            self.bundle.num_classes,
            target_offsets=plan.yv_offsets,
        )
        return {f"val_{k}": v for k, v in scores.items()}

    def predict(self, model: nn.Module, X: Any) -> torch.Tensor:
        """Raw outputs for ``X`` on the CPU: logits for classification, values for regression."""
        device = next(model.parameters()).device
        X = torch.as_tensor(X, dtype=torch.float32, device=device)
        return self._outputs(model, X).cpu()

    def evaluation(self, model: nn.Module, bundle: Any, split: str = "test") -> Evaluation:
        """sklearn's metrics, per-class scores, confusion matrix and report for ``split``."""
        X, y = bundle.split(split)
        outputs = self.predict(model, X)
        loss_fn = build_loss(
            self.config.loss,
            bundle.task,
            num_classes=bundle.num_classes,
            y_train=bundle.y_train,
            label_smoothing=float(self.config.label_smoothing),
            class_weights=self.config.class_weights,
        )
        with torch.no_grad():
            loss = float(loss_fn(outputs, y.cpu()))
        return full_evaluation(
            outputs, y.cpu(), loss, task=bundle.task, classes=list(bundle.classes), split=split
        )

    def evaluate(self, model: nn.Module, bundle: Any, split: str = "test") -> dict[str, float]:
        """Flat metrics of ``split`` (``test_loss``, ``test_accuracy``, ``test_f1_macro``, ...)."""
        return self.evaluation(model, bundle, split).metrics

    def _eval_batch_size(self) -> int:
        return int(self.config.eval_batch_size or max(4 * int(self.config.batch_size), 1024))

    plan: Any
    bundle: Any
    config: Any
