"""int8 quantisation with ONNX Runtime on the exported graph.

``torch.ao.quantization`` is deprecated in this torch and torchao's int8 dynamic mode gives no
CPU speed-up (1.53 ms against 1.48 ms fp32 on a 512-1024-1024-10 MLP), while ONNX Runtime's int8
kernels do, so the model is exported to ONNX and quantised there:

* ``dynamic`` (``quantize_dynamic``): int8 weights, activations quantised on the fly per batch.
  No calibration. Recurrent layers (``DynamicQuantizeLSTM``) and attention need it: static
  int8 activations after softmax/layer norm changed 8% of the predictions of a small untrained
  transformer on random inputs, dynamic none.
* ``static`` (``quantize_static``): int8 weights and activations with scales fixed from
  calibration batches drawn from the *training* split, operator format (``QLinearConv``,
  ``QGemm``), per-channel weight scales; pooling stays fp32. Dynamic
  quantisation turns Conv into ``ConvInteger``, which ORT runs slower than fp32 (5.4 ms against
  0.9 ms CPU for a digits CNN at batch 64); static runs it as ``QLinearConv``. On plain MLPs
  static was also faster and at least as accurate (digits MLP: 0.19 ms and no flipped
  prediction against 0.20 ms and 0.4% flipped for dynamic), as no activation quantisation is
  computed per batch; the operator format made files 3-10% smaller than QDQ at the same speed.
* ``auto``: static for feed-forward graphs (Conv, Gemm, MatMul), dynamic when the graph has
  recurrent or attention operators or no calibration rows are given (bench/compression.py
  measures both modes on each benchmark model).

Weights are quantised with 7 bits (``reduce_range``). ORT's x86 int8 kernels multiply uint8
activations by int8 weights with ``vpmaddubsw``, whose int16 pair sums saturate on CPUs without
VNNI (like this machine's AVX2); with full 8-bit weights a digits CNN's int8 logits were off by
up to 2.1 and 1.5% of its test predictions flipped, with 7-bit weights 0.3 and none. Speed is
the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..config import CompressConfig
from ..errors import FatalError
from ._base import CompressContext, CompressionMethod, Variant, register_method
from ._onnx import INPUT_NAME, export_onnx
from ._predictor import require

QuantMode = Literal["auto", "dynamic", "static"]


def graph_ops(path: str | Path) -> list[str]:
    """The operator types of an ONNX graph, in order."""
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


_DYNAMIC_OPS = ("LSTM", "GRU", "RNN", "Softmax", "LayerNormalization", "Attention")
# Pooling is memory-bound; ORT's uint8 pooling ran slower than fp32 on a digits CNN (the whole
# int8 model took 1.18 ms at batch 64 with int8 pooling, 0.97 ms with fp32 pooling).
_FP32_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")


def resolve_mode(
    mode: QuantMode, fp32_path: str | Path, *, has_calibration: bool = True
) -> Literal["dynamic", "static"]:
    """``auto`` -> ``static`` for feed-forward graphs, ``dynamic`` for recurrent/attention."""
    if mode != "auto":
        return mode
    if not has_calibration or any(op in _DYNAMIC_OPS for op in graph_ops(fp32_path)):
        return "dynamic"
    return "static"


def quantize_onnx(
    fp32_path: str | Path,
    out_path: str | Path,
    *,
    mode: QuantMode = "auto",
    calibration: np.ndarray | None = None,
    calibration_batch: int = 64,
    reduce_range: bool = True,
) -> tuple[Path, Literal["dynamic", "static"]]:
    """Write an int8 version of ``fp32_path``; returns ``(path, mode used)``.

    Args:
        fp32_path: the float ONNX model (from :func:`export_onnx`).
        out_path: where the int8 model goes.
        mode: ``dynamic``, ``static`` or ``auto`` (see the module docstring).
        calibration: input rows for ``static`` (from the training split); ``auto`` without
            them falls back to ``dynamic``.
        calibration_batch: rows per calibration batch.
        reduce_range: 7-bit weights, which avoid int16 saturation on CPUs without VNNI.
    """
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    used = resolve_mode(
        mode, fp32_path, has_calibration=calibration is not None and len(calibration) > 0
    )
    prepared = out_path.with_name(out_path.stem + ".pre.onnx")
    try:
        # Shape inference and graph clean-up first, as ORT's quantisation docs advise.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        if used == "dynamic":
            quantize_dynamic(
                str(prepared), str(out_path), weight_type=QuantType.QInt8, reduce_range=reduce_range
            )
        else:
            if calibration is None or len(calibration) == 0:
                raise FatalError("error: static quantisation needs calibration rows")
            batches = [
                {INPUT_NAME: np.ascontiguousarray(calibration[i : i + calibration_batch], "f")}
                for i in range(0, len(calibration), calibration_batch)
            ]

            class _Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter(batches)

                def get_next(self) -> dict[str, np.ndarray] | None:
                    return next(self._it, None)

            quantize_static(
                str(prepared),
                str(out_path),
                _Reader(),
                quant_format=QuantFormat.QOperator,
                per_channel=True,
                nodes_to_exclude=_fp32_nodes(prepared),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                reduce_range=reduce_range,
            )
    except FatalError:
        raise
    except Exception as exc:
        raise FatalError(
            f"error: ONNX Runtime could not quantise {fp32_path.name} ({used}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    finally:
        prepared.unlink(missing_ok=True)
    return out_path, used


# A regression model's head output is mapped to the targets' units by a Mul and an Add with
# per-output constants (``HeadedModel.set_output_scale``); ORT's QLinearMul/QLinearAdd take
# scalar constants only, and the two ops cost nothing in fp32.
_OUTPUT_SCALING = ("output_scale", "output_offset")


def _fp32_nodes(path: Path) -> list[str]:
    """Nodes static quantisation leaves in fp32: pooling (see ``_FP32_OPS``) and a regression
    head's output scaling.

    The output layer is quantised too. Keeping it fp32 (so logits are not clipped to the
    calibration range) changed no test prediction on the three benchmark models but made the
    digits files 8% larger (3.42x instead of 3.70x smaller than fp32). Inputs are clipped to the
    calibration range as well: on digits, standardised pixels reach 85 in the test split but 18
    in the calibration rows, which moved those rows' logits by up to 10 with no prediction
    flipped; the parity check of ``tunelab export --int8`` guards the predictions.
    """
    import onnx

    return [
        n.name
        for n in onnx.load(str(path)).graph.node
        if n.op_type in _FP32_OPS or any(i in _OUTPUT_SCALING for i in n.input)
    ]


def calibration_rows(X: torch.Tensor, *, batches: int, batch_size: int, seed: int) -> np.ndarray:
    """``batches * batch_size`` random training rows (all of them if the split is smaller)."""
    n = min(len(X), batches * batch_size)
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n]
    return X[idx].cpu().numpy().astype(np.float32)


@register_method("quantize")
class Quantize(CompressionMethod):
    """int8 quantisation of the exported ONNX graph (dynamic, static or auto).

    Args:
        mode: ``auto`` (static for conv nets, dynamic otherwise), ``dynamic`` or ``static``.
        calibration_batches: training batches used to calibrate static quantisation.
    """

    produces = "onnx"

    def __init__(self, *, mode: QuantMode = "auto", calibration_batches: int = 8) -> None:
        self.mode = mode
        self.calibration_batches = calibration_batches

    @classmethod
    def from_config(cls, config: CompressConfig) -> Quantize:
        return cls(mode=config.quantize_mode, calibration_batches=config.calibration_batches)

    def apply(self, variant: Variant, ctx: CompressContext) -> Variant:
        model = variant.torch_model()
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        fp32 = export_onnx(model, ctx.bundle.X_train[:2], ctx.work_dir / "model.fp32.onnx")
        batch = int(ctx.train_config.batch_size)
        rows = calibration_rows(
            ctx.bundle.X_train, batches=self.calibration_batches, batch_size=batch, seed=ctx.seed
        )
        out, used = quantize_onnx(
            fp32,
            ctx.work_dir / "model.onnx",
            mode=self.mode,
            calibration=rows,
            calibration_batch=batch,
        )
        ctx.log(f"quantize: {used} int8 via ONNX Runtime -> {out}")
        info: dict[str, Any] = {
            "quantize": {
                "backend": "onnxruntime",
                "mode": used,
                "calibration_rows": len(rows) if used == "static" else 0,
                "fp32_onnx": str(fp32),
                "int8_ops": sorted({op for op in graph_ops(out) if _is_int8_op(op)}),
            }
        }
        source = variant if variant.model is not None else variant.source
        return variant.derive(
            "quantize", model=None, onnx_path=out, source=source, info={**variant.info, **info}
        )


def _is_int8_op(op: str) -> bool:
    return op.startswith(
        (
            "QLinear",
            "QGemm",
            "MatMulInteger",
            "ConvInteger",
            "DynamicQuantize",
            "QuantizeLinear",
            "DequantizeLinear",
            "DynamicQuantizeLSTM",
        )
    )
