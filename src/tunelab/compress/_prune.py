"""Pruning: global unstructured magnitude pruning, and structured pruning that shrinks layers.

Unstructured pruning (``torch.nn.utils.prune.global_unstructured`` with the L1 criterion)
zeroes the smallest weights across every Linear/Conv layer at once; the tensors stay dense, so
it saves nothing on disk or in latency by itself — the table says so honestly — but it is the
classic lottery-ticket style baseline and composes with sparse runtimes.

Structured pruning removes whole neurons (Linear outputs) and channels (Conv filters) ranked by
L2 norm, and really shrinks the layers. It uses Torch-Pruning's dependency graph, which follows
a removed channel into every consumer (the next Linear/Conv, BatchNorm, the Flatten into the
classifier, residual additions), so it works on the CNN and ResNet builders as well as MLPs,
where a hand-written MLP/CNN pruner would have to special-case every layout. The classifier
``head`` keeps its outputs. Both are followed by a short fine-tune; ``steps > 1`` prunes
gradually with a fine-tune after every step.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune

from ..config import CompressConfig
from ..errors import ConfigError
from ._base import CompressContext, CompressionMethod, Variant, register_method
from ._loop import short_fit

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_UNPRUNED = (nn.RNNBase, nn.MultiheadAttention)


def head_layer(model: nn.Module) -> nn.Module | None:
    """The output layer: ``model.head`` (the builders' convention), else the last Linear."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        last = [m for m in head.modules() if isinstance(m, _WEIGHTED)]
        return last[-1] if last else head
    linears = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
    return linears[-1] if linears else None


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """Linear and Conv layers whose weights pruning may touch (all but the output layer)."""
    head = head_layer(model)
    return [m for m in model.modules() if isinstance(m, _WEIGHTED) and m is not head]


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, name)`` of every weight matrix unstructured pruning ranks: Linear and Conv
    weights (not the output layer's), LSTM/GRU input and recurrent weights, and attention's
    packed input projection."""
    found: list[tuple[nn.Module, str]] = [(m, "weight") for m in prunable_layers(model)]
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            found += [(module, n) for n in module._flat_weights_names if n.startswith("weight_")]
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            found.append((module, "in_proj_weight"))
    return found


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over :func:`prunable_weights` (masks applied if attached)."""
    weights = [getattr(m, name).detach() for m, name in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


def prune_unstructured(model: nn.Module, sparsity: float) -> nn.Module:
    """Mask the ``sparsity`` fraction of smallest-magnitude weights, ranked globally.

    The masks stay attached (``weight_orig`` * ``weight_mask``) so a fine-tune keeps pruned
    weights at zero; call :func:`make_permanent` afterwards. Pruning an already masked model
    to a higher sparsity extends the existing masks.
    """
    params = prunable_weights(model)
    if not params:
        raise ConfigError("config error: compress.methods — the model has no weights to prune")
    total = sum(getattr(m, name).numel() for m, name in params)
    target = round(sparsity * total)
    already = round(weight_sparsity(model) * total)
    if target <= already:
        return model
    # An int amount counts weights among those still unpruned (torch's pruning container).
    torch_prune.global_unstructured(
        params, pruning_method=torch_prune.L1Unstructured, amount=target - already
    )
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold pruning masks into plain weight tensors (zeros stay zeros)."""
    for module in model.modules():
        for name, _ in list(module.named_parameters(recurse=False)):
            if name.endswith("_orig"):
                torch_prune.remove(module, name[: -len("_orig")])
    return model


def prune_structured(
    model: nn.Module,
    ratio: float,
    example: torch.Tensor,
    *,
    steps: int = 1,
    after_step: Any = None,
) -> nn.Module:
    """Remove ``ratio`` of the neurons/channels of every prunable layer, by L2 magnitude.

    Args:
        model: pruned in place (its layers really get smaller).
        ratio: fraction of output neurons/channels removed from each layer.
        example: an input batch; the dependency graph is traced from it.
        steps: prune gradually over this many steps (linear schedule).
        after_step: called as ``after_step(step)`` after every step (the fine-tune).
    """
    import torch_pruning as tp

    head = head_layer(model)
    # Recurrent cells and attention heads are left whole (their gates and heads couple the
    # channels in ways the pruner would have to be told about); Linear/Conv around them shrink.
    ignored = [head] if head is not None else []
    ignored += [m for m in model.modules() if isinstance(m, _UNPRUNED)]
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # "unwrapped parameters" (a transformer's position table): they follow d_model,
            # which stays whole because attention is ignored above.
            warnings.filterwarnings("ignore", module="torch_pruning")
            pruner = tp.pruner.MagnitudePruner(
                model,
                example,
                importance=tp.importance.MagnitudeImportance(p=2),
                pruning_ratio=ratio,
                iterative_steps=steps,
                ignored_layers=ignored,
            )
    except Exception as exc:  # tracing fails on layouts the dependency graph cannot follow
        raise ConfigError(
            f"config error: compress.structured — cannot trace {type(model).__name__} for "
            f"structured pruning ({str(exc).splitlines()[0]}); set compress.structured: false"
        ) from None
    before = sum(p.numel() for p in model.parameters())
    for step in range(1, steps + 1):
        model.eval()
        pruner.step()
        if step == 1 and sum(p.numel() for p in model.parameters()) == before:
            raise ConfigError(
                f"config error: compress.structured — nothing in {type(model).__name__} can be "
                "pruned structurally (its weights sit in LSTM/GRU/attention layers or the output "
                "layer); set compress.structured: false, or use distill"
            )
        if after_step is not None:
            after_step(step)
    model.train(was_training)
    return model


def layer_widths(model: nn.Module) -> list[int]:
    """Output neurons/channels of each Linear/Conv layer, in order (shows what shrank)."""
    return [
        m.out_features if isinstance(m, nn.Linear) else m.out_channels
        for m in model.modules()
        if isinstance(m, _WEIGHTED)
    ]


@register_method("prune")
class Prune(CompressionMethod):
    """Magnitude pruning to ``sparsity``, structured or not, with a fine-tune after each step.

    Args:
        sparsity: unstructured: fraction of weights zeroed; structured: fraction of neurons
            or channels removed from each layer.
        structured: remove whole neurons/channels (smaller, faster) instead of single weights.
        finetune_epochs: epochs of fine-tuning after each pruning step (0: none).
        steps: number of gradual pruning steps.
        finetune_lr: learning rate of the fine-tune (None: the run's ``train.lr``).
    """

    def __init__(
        self,
        *,
        sparsity: float = 0.5,
        structured: bool = True,
        finetune_epochs: int = 2,
        steps: int = 1,
        finetune_lr: float | None = None,
    ) -> None:
        self.sparsity = sparsity
        self.structured = structured
        self.finetune_epochs = finetune_epochs
        self.steps = steps
        self.finetune_lr = finetune_lr

    @classmethod
    def from_config(cls, config: CompressConfig) -> Prune:
        return cls(
            sparsity=config.sparsity,
            structured=config.structured,
            finetune_epochs=config.finetune_epochs,
            steps=config.prune_steps,
            finetune_lr=config.finetune_lr,
        )

    def check(self, variant: Variant, ctx: CompressContext) -> None:
        """Try the pruning on a copy, so an unprunable model fails before any training."""
        model = copy.deepcopy(variant.torch_model()).cpu()
        if self.structured:
            prune_structured(model, self.sparsity, ctx.bundle.X_train[:2].cpu())
        else:
            prune_unstructured(model, self.sparsity)

    def apply(self, variant: Variant, ctx: CompressContext) -> Variant:
        model = copy.deepcopy(variant.torch_model()).cpu()
        widths_before = layer_widths(model)
        finetune_log: list[dict[str, Any]] = []

        def finetune(step: int) -> None:
            if self.finetune_epochs <= 0:
                return
            # Pruning masks stay attached through the fine-tune, so zeroed weights stay zero.
            result = short_fit(
                model,
                ctx.bundle,
                config=ctx.train_config,
                epochs=self.finetune_epochs,
                lr=self.finetune_lr,
                seed=ctx.seed + step,
            )
            model.cpu()
            val = {k: v for k, v in result.best_metrics.items() if k.startswith("val_")}
            finetune_log.append(
                {"step": step, "status": result.status, "best_epoch": result.best_epoch, **val}
            )
            ctx.log(f"prune step {step}/{self.steps}: fine-tuned {result.epochs_run} epoch(s)")

        if self.structured:
            example = ctx.bundle.X_train[:2].cpu()
            prune_structured(model, self.sparsity, example, steps=self.steps, after_step=finetune)
        else:
            for step in range(1, self.steps + 1):
                prune_unstructured(model, self.sparsity * step / self.steps)
                finetune(step)
            make_permanent(model)
        model.eval()
        info = {
            "prune": {
                "structured": self.structured,
                "target": self.sparsity,
                "weight_sparsity": round(weight_sparsity(model), 4),
                "widths_before": widths_before,
                "widths_after": layer_widths(model),
                "steps": self.steps,
                "finetune": finetune_log,
            }
        }
        return variant.derive("prune", model=model, onnx_path=None, info={**variant.info, **info})
