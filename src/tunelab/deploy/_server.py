"""The prediction server: FastAPI routes around a loaded model, run by uvicorn.

``POST /predict`` reads the raw body itself (so the size limit holds before anything is parsed
and malformed JSON gets a message instead of a framework error), validates it against the
input schema, applies the saved preprocessing and runs every row of the request in one
forward pass. Bad input is a 4xx with a message naming what is wrong; a 5xx would mean a bug.
"""

import functools
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..compress import predicted_labels, require
from ._loading import ServedModel, load_served_model
from ._schema import InputError, InputSchema, parse_body, schema_for


def _softmax(logits: np.ndarray) -> np.ndarray:
    if logits.ndim == 1 or logits.shape[-1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-logits.reshape(-1).astype(np.float64)))
        return np.stack([1.0 - p1, p1], axis=1)
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class PredictionService:
    """Raw rows in, predictions out: validation, preprocessing, one forward pass, decoding."""

    def __init__(self, served: ServedModel, *, max_rows: int = 1024) -> None:
        self.served = served
        self.max_rows = max_rows
        self.forward_calls = 0

    @cached_property
    def schema(self) -> InputSchema:
        return schema_for(self.served.preprocessing, self.served.spec)

    @property
    def classes(self) -> list[str]:
        spec = self.served.spec
        if spec.task != "classification":
            return []
        return list(spec.classes) or [str(i) for i in range(max(spec.output_size, 2))]

    def model_input(
        self, rows: list[Any], *, ignore_extra: bool = False
    ) -> tuple[np.ndarray, list[str]]:
        """Validated, preprocessed model input and any warnings about the raw values."""
        raw, warnings = self.schema.parse(rows, ignore_extra=ignore_extra)
        pre = self.served.preprocessing
        if pre is None or not hasattr(pre, "transform"):
            return raw, warnings
        try:
            if self.schema.kind == "image" and hasattr(pre, "normalise"):
                return pre.normalise(raw), warnings  # rows are (n, C, H, W) at the fitted size
            return np.asarray(pre.transform(raw), dtype=np.float32), warnings
        except Exception as exc:  # the transform only ever sees validated user input
            raise InputError(f"input could not be preprocessed: {_first_line(exc)}") from None

    def predict(self, rows: list[Any], *, ignore_extra: bool = False) -> dict[str, Any]:
        X, warnings = self.model_input(rows, ignore_extra=ignore_extra)
        expected = tuple(int(d) for d in self.served.spec.input_shape)
        if tuple(X.shape[1:]) != expected:
            raise InputError(
                f"preprocessed input has shape {tuple(X.shape[1:])}, the model expects {expected}"
            )
        self.forward_calls += 1
        outputs = np.asarray(self.served.predictor(np.ascontiguousarray(X, dtype=np.float32)))
        extra = {"warnings": warnings} if warnings else {}
        if self.served.spec.task != "classification":
            values = outputs.reshape(len(X)) if outputs.size == len(X) else outputs
            return {"predictions": values.tolist(), "rows": len(X), **extra}
        probs = _softmax(outputs)
        idx = predicted_labels(outputs)
        classes = self.classes
        names = [classes[i] if i < len(classes) else str(i) for i in idx.tolist()]
        return {
            "predictions": names,
            "class_indices": idx.tolist(),
            "probabilities": np.round(probs, 6).tolist(),
            "classes": classes,
            "rows": len(X),
            **extra,
        }

    def metadata(self) -> dict[str, Any]:
        spec = self.served.spec
        return {
            "model": {
                "name": self.served.name,
                "format": self.served.format,
                "builder": spec.builder,
                "params": spec.params,
                "path": str(self.served.path) if self.served.path else None,
            },
            "task": spec.task,
            "classes": self.classes,
            "input": self.schema.describe(),
            "model_input_shape": list(spec.input_shape),
            "output_size": spec.output_size,
            "preprocessing": getattr(self.served.preprocessing, "kind", None),
            "metrics": self.served.metrics,
            "max_rows": self.max_rows,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def create_app(
    served: ServedModel, *, max_rows: int = 1024, max_body_bytes: int = 10_000_000
) -> Any:
    """The FastAPI application serving ``served``.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(load_served_model("runs/digits")))  # doctest: +SKIP
        >>> client.post("/predict", json={"rows": [[0.0] * 64]}).json()  # doctest: +SKIP
    """
    require("fastapi", "serve")
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    engine = PredictionService(served, max_rows=max_rows)
    started = time.time()
    app = FastAPI(
        title="tunelab model server",
        description=(
            f"Serves `{served.name}` ({served.spec.builder}, {served.format}). POST raw rows "
            "to /predict; the saved preprocessing is applied on the server."
        ),
        version="1",
    )
    app.state.engine = engine

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {_first_line(exc)}")

    @app.get("/health", summary="Liveness: the model is loaded")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": served.name,
            "format": served.format,
            "uptime_s": round(time.time() - started, 3),
        }

    @app.get("/metadata", summary="Model, input schema, classes and metrics")
    def metadata() -> dict[str, Any]:
        return {**engine.metadata(), "max_body_bytes": max_body_bytes}

    request_schema = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["rows"],
                        "properties": {
                            "rows": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": max_rows,
                                "items": {"type": "object"}
                                if engine.schema.kind == "table"
                                else {"type": "array"},
                            }
                        },
                    },
                    "example": engine.schema.example(),
                }
            },
        }
    }

    @app.post(
        "/predict",
        summary=f"Predict up to {max_rows} rows in one forward pass",
        openapi_extra=request_schema,
        description=(
            "Rows as the training data had them. A numeric feature may be a number or a string "
            'that is plainly one (`"30"`); `null` imputes a feature with its training fill '
            "value where `/metadata` lists it under `input.null_imputes`. Columns the model "
            "does not use (an id, the label) are refused unless `?extra=ignore` is given, "
            "which drops them and says so in `warnings`."
        ),
        responses={
            413: {
                "description": (
                    f"more than {max_rows} rows, or a body over {max_body_bytes} bytes"
                ),
                "content": {"application/json": {"example": {"detail": "..."}}},
            },
            422: {
                "description": "input that does not match the schema (names the row and feature)",
                "content": {"application/json": {"example": {"detail": "row 0: ..."}}},
            },
        },
    )
    async def predict(request: Request, extra: str = "error") -> Any:
        if extra not in ("error", "ignore"):
            return error(422, f"extra={extra[:40]!r}: expected 'error' or 'ignore'")
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return error(422, f"invalid Content-Length header {length[:40]!r}")
            if declared > max_body_bytes:
                return error(413, f"body of {declared} bytes; the limit is {max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return error(413, f"body over the limit of {max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            rows = parse_body(b"".join(chunks), max_rows=max_rows)
            return await run_in_threadpool(
                functools.partial(engine.predict, ignore_extra=extra == "ignore"), rows
            )
        except InputError as exc:
            return error(exc.status, exc.message)

    return app


def serve(
    run_dir: str | Path,
    *,
    model: str = "best",
    host: str = "127.0.0.1",
    port: int = 8000,
    max_rows: int = 1024,
    max_body_bytes: int = 10_000_000,
    threads: int | None = None,
    log_level: str = "info",
) -> None:
    """Load ``model`` from ``run_dir`` and serve it with uvicorn until interrupted."""
    uvicorn = require("uvicorn", "serve")

    served = load_served_model(run_dir, model, threads=threads)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    app = create_app(served, max_rows=max_rows, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
