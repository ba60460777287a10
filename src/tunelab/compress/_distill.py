"""Knowledge distillation: a narrower student learns the teacher's soft targets plus the labels.

The student is, by default, the teacher's builder with every width-like parameter (``width``,
``hidden_size``, ``channels``, ``d_model``, ...) multiplied by ``student_width_mult``; a config
can name another builder and parameters instead. The loss is Hinton et al.'s::

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)

(the ``T^2`` keeps the soft term's gradient scale independent of the temperature). For
regression the soft term is the MSE to the teacher's prediction.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CompressConfig
from ..errors import ConfigError
from ._base import CompressContext, CompressionMethod, Variant, register_method
from ._loop import fit_loop

_WIDTH_WORDS = (
    "width",
    "hidden",
    "channel",
    "filter",
    "units",
    "d_model",
    "dim_feedforward",
    "embed_dim",
)
_WIDTH_KEYS = ("ff", "dim")  # short names matched exactly, not as substrings
_HEAD_WORDS = ("nhead", "num_heads", "heads")


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    task: str = "classification",
) -> torch.Tensor:
    """Soft-target loss (weight ``alpha``) plus the label loss (weight ``1 - alpha``).

    Example:
        >>> import torch
        >>> s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
        >>> hard = distillation_loss(s, t, y, temperature=4.0, alpha=0.0)
        >>> torch.allclose(hard, torch.nn.functional.cross_entropy(s, y))
        True
    """
    teacher = teacher.detach()
    if task == "classification":
        t = float(temperature)
        soft = F.kl_div(
            F.log_softmax(student / t, dim=1),
            F.softmax(teacher / t, dim=1),
            reduction="batchmean",
        ) * (t * t)
        hard = F.cross_entropy(student, targets)
    else:
        soft = F.mse_loss(student, teacher)
        hard = F.mse_loss(student.reshape(targets.shape), targets)
    return alpha * soft + (1.0 - alpha) * hard


def scale_widths(params: dict[str, Any], mult: float) -> tuple[dict[str, Any], list[str]]:
    """Width-like parameters times ``mult`` (ints and lists of ints); returns the names changed.

    Attention widths are rounded to a multiple of the head count so the student still builds.
    """
    heads = next((int(params[k]) for k in _HEAD_WORDS if isinstance(params.get(k), int)), 1)
    scaled, changed = dict(params), []
    for key, value in params.items():
        widthlike = key.lower() in _WIDTH_KEYS or any(w in key.lower() for w in _WIDTH_WORDS)
        if not widthlike or isinstance(value, bool):
            continue
        multiple = heads if key.lower() in ("d_model", "embed_dim") else 1
        if isinstance(value, int):
            scaled[key] = _scale(value, mult, multiple)
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            scaled[key] = type(value)(_scale(v, mult, multiple) for v in value)
        else:
            continue
        if scaled[key] != value:
            changed.append(key)
    return scaled, changed


def _scale(value: int, mult: float, multiple: int) -> int:
    return max(multiple, math.ceil(value * mult / multiple) * multiple)


def student_spec(
    spec: Any,
    *,
    width_mult: float,
    builder: str | None = None,
    params: dict[str, Any] | None = None,
    teacher: nn.Module | None = None,
) -> Any:
    """The student's ``ModelSpec``: another builder/params if given, else the scaled teacher.

    Width parameters the teacher left at their defaults are scaled too (the builder's
    signature gives the default); a ``channels`` default of None is read from the teacher's
    conv layers.
    """
    if builder is not None:
        return dataclasses.replace(spec, builder=builder, params=dict(params or {}))
    effective = _effective_params(spec, teacher)
    scaled, changed = scale_widths(effective, width_mult)
    result = dict(spec.params)
    result.update({k: scaled[k] for k in changed})
    result.update(params or {})
    if not changed and not params:
        raise ConfigError(
            f"config error: compress.student_width_mult — builder {spec.builder!r} has no "
            f"width-like parameter among {sorted(effective)} to scale; set "
            "compress.student_params (or compress.student_builder)",
            field="compress.student_width_mult",
        )
    return dataclasses.replace(spec, params=result)


def _effective_params(spec: Any, teacher: nn.Module | None) -> dict[str, Any]:
    from ..models import builder_parameters

    try:
        defaults = builder_parameters(spec.builder)
    except ConfigError:
        defaults = {}
    effective = {
        k: v for k, v in defaults.items() if v is not None and v is not inspect.Parameter.empty
    }
    # A width list given as a whole (``widths``) replaces depth x width; scaling ``width``
    # alongside it would be harmless but would clutter the student's params.
    effective.update(spec.params)
    if spec.params.get("widths") is not None:
        effective.pop("width", None)
    if "channels" in defaults and effective.get("channels") is None and teacher is not None:
        convs = [m.out_channels for m in teacher.modules() if isinstance(m, nn.Conv2d)]
        if convs:
            effective["channels"] = convs
    return effective


@register_method("distill")
class Distill(CompressionMethod):
    """Train a narrower student on the teacher's soft targets and the labels.

    Args:
        width_mult: multiplier for the teacher's width-like parameters.
        temperature: softmax temperature of the soft targets.
        alpha: weight of the soft-target term (``1 - alpha`` on the labels).
        epochs: training epochs of the student (the best validation epoch is kept);
            None trains as long as the run's ``train.epochs``.
        builder, params: an explicit student instead of the scaled teacher.
    """

    def __init__(
        self,
        *,
        width_mult: float = 0.5,
        temperature: float = 4.0,
        alpha: float = 0.7,
        epochs: int | None = None,
        builder: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.width_mult = width_mult
        self.temperature = temperature
        self.alpha = alpha
        self.epochs = epochs
        self.builder = builder
        self.params = params

    @classmethod
    def from_config(cls, config: CompressConfig) -> Distill:
        return cls(
            width_mult=config.student_width_mult,
            temperature=config.temperature,
            alpha=config.alpha,
            epochs=config.distill_epochs,
            builder=config.student_builder,
            params=dict(config.student_params) or None,
        )

    def build_student(
        self, spec: Any, ctx: CompressContext, teacher: nn.Module | None = None
    ) -> tuple[nn.Module, Any]:
        from ..models import build_model

        sspec = student_spec(
            spec,
            width_mult=self.width_mult,
            builder=self.builder,
            params=self.params,
            teacher=teacher,
        )
        torch.manual_seed(ctx.seed)
        student = build_model(
            sspec.builder,
            sspec.params,
            input_shape=sspec.input_shape,
            output_size=sspec.output_size,
            init=getattr(sspec, "init", "default"),
        )
        return student, sspec

    def apply(self, variant: Variant, ctx: CompressContext) -> Variant:
        teacher = variant.torch_model().to(ctx.device).eval()
        student, sspec = self.build_student(variant.spec, ctx, teacher)
        task = ctx.bundle.task

        def loss_fn(out: torch.Tensor, y: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                soft = teacher(xb)
            return distillation_loss(
                out, soft, y, temperature=self.temperature, alpha=self.alpha, task=task
            )

        epochs = int(self.epochs or ctx.train_config.epochs)
        # The run's Trainer settings (optimiser, schedule, early stopping, best epoch kept)
        # with the distillation loss on the training steps.
        result = fit_loop(
            student,
            ctx.bundle,
            config=ctx.train_config,
            epochs=epochs,
            loss_fn=loss_fn,
            seed=ctx.seed,
            device=ctx.device,
        )
        teacher.cpu()
        student.cpu().eval()
        ctx.log(
            f"distill: student {sspec.params} best val {result.best_val:.4f} "
            f"(epoch {result.best_epoch}/{epochs})"
        )
        info = {
            "distill": {
                "student_builder": sspec.builder,
                "student_params": sspec.params,
                "temperature": self.temperature,
                "alpha": self.alpha,
                "epochs": epochs,
                "best_epoch": result.best_epoch,
                "best_val": round(result.best_val, 6),
            }
        }
        return variant.derive(
            "distill", model=student, spec=sspec, onnx_path=None, info={**variant.info, **info}
        )
