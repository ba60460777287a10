"""The compress stage: prune, quantise and distil a trained model, and compare the variants.

Each method is a :class:`CompressionMethod` registered by name; ``compress_run`` applies a chain
of them to ``RUN_DIR/best`` and writes a table of size, latency and test metric per variant.

>>> from tunelab.compress import method_names
>>> method_names()
['distill', 'prune', 'quantize']
"""

from ._base import (
    CompressContext,
    CompressionMethod,
    Variant,
    check_order,
    get_method,
    make_method,
    method_names,
    register_method,
)
from ._distill import Distill, distillation_loss, scale_widths, student_spec
from ._io import (
    LoadedVariant,
    fit_to_state,
    load_variant,
    read_preprocessing,
    save_variant,
    write_onnx_metadata,
)
from ._loop import LoopResult, fit_loop
from ._measure import (
    Latency,
    count_params,
    measure_latency,
    predict_batched,
    predicted_labels,
    task_metric,
)
from ._onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from ._predictor import (
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    fixed_threads,
    looks_like_pickle,
    onnx_is_quantized,
    open_onnx_session,
    refuse_pickle,
    require,
)
from ._prune import (
    Prune,
    layer_widths,
    make_permanent,
    prunable_layers,
    prune_structured,
    prune_unstructured,
    weight_sparsity,
)
from ._quantize import Quantize, calibration_rows, graph_ops, quantize_onnx, resolve_mode
from ._runner import (
    CompressionResult,
    compress_model,
    compress_run,
)
from ._table import CompressionRow, CompressionTable

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "CompressContext",
    "CompressionMethod",
    "CompressionResult",
    "CompressionRow",
    "CompressionTable",
    "Distill",
    "Latency",
    "LoadedVariant",
    "LoopResult",
    "OnnxPredictor",
    "Predictor",
    "Prune",
    "Quantize",
    "TorchPredictor",
    "Variant",
    "calibration_rows",
    "check_order",
    "compress_model",
    "compress_run",
    "count_params",
    "distillation_loss",
    "export_onnx",
    "fit_loop",
    "fit_to_state",
    "fixed_threads",
    "get_method",
    "graph_ops",
    "layer_widths",
    "load_variant",
    "looks_like_pickle",
    "make_method",
    "make_permanent",
    "measure_latency",
    "method_names",
    "onnx_is_quantized",
    "open_onnx_session",
    "predict_batched",
    "predicted_labels",
    "prunable_layers",
    "prune_structured",
    "prune_unstructured",
    "quantize_onnx",
    "read_preprocessing",
    "refuse_pickle",
    "register_method",
    "require",
    "resolve_mode",
    "save_variant",
    "scale_widths",
    "student_spec",
    "task_metric",
    "weight_sparsity",
    "write_onnx_metadata",
]
