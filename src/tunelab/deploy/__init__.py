"""The deploy stage: export (TorchScript, ONNX, int8 ONNX) with parity checks, and serving.

``export_run`` writes ``RUN_DIR/export/`` (the model files plus ``model.json`` and
``preprocessing.json``); ``create_app``/``serve`` put any saved model behind FastAPI.
"""

from ._export import (
    FILES,
    ExportError,
    ExportResult,
    ParityReport,
    check_parity,
    export_run,
    export_torchscript,
    export_variant,
)
from ._loading import ServedModel, load_served_model
from ._schema import InputError, InputSchema, parse_body, schema_for
from ._server import PredictionService, create_app, serve

__all__ = [
    "FILES",
    "ExportError",
    "ExportResult",
    "InputError",
    "InputSchema",
    "ParityReport",
    "PredictionService",
    "ServedModel",
    "check_parity",
    "create_app",
    "export_run",
    "export_torchscript",
    "export_variant",
    "load_served_model",
    "parse_body",
    "schema_for",
    "serve",
]
