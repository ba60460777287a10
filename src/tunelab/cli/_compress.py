"""``tunelab compress``, ``tunelab export`` and ``tunelab serve``: the last mile of a run.

``compress RUN_DIR --methods distill,prune,quantize`` prints the comparison table and writes
``RUN_DIR/compressed/``; ``export RUN_DIR --format onnx`` writes ``RUN_DIR/export/`` after a
parity check; ``serve RUN_DIR --model best|onnx|int8`` starts the HTTP server. Defaults come
from the ``compress`` and ``deploy`` sections of the run's resolved config
(``RunDir.resolved_config()``: ``best/config.yaml`` after tuning), read once per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ._app import app


def _run_config(run_dir: Path) -> Any:
    """The run's resolved config (``best/config.yaml`` after tuning), or None when it has none.

    Read once per command and handed on, so the stage does not read it again.
    """
    from ..errors import FatalError
    from ..rundir import RunDir

    try:
        return RunDir(run_dir).resolved_config()
    except FatalError:
        return None


def _defaults() -> Any:
    from ..config import parse_config

    return parse_config({})


def _split(value: str, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"config error: {option} is empty")
    return items


@app.command()
def compress(
    run_dir: Path = typer.Argument(..., help="A run or training directory (holds best/)."),
    methods: str | None = typer.Option(
        None, "--methods", "-m", help="Comma-separated, applied in order: distill,prune,quantize."
    ),
    sparsity: float | None = typer.Option(
        None, "--sparsity", help="Pruning ratio (default compress.sparsity)."
    ),
    unstructured: bool = typer.Option(
        False, "--unstructured", help="Zero single weights instead of removing neurons/channels."
    ),
    quantize_mode: str | None = typer.Option(
        None, "--quantize-mode", help="auto, dynamic or static (default compress.quantize_mode)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Threads for latency measurement (default compress.latency_threads).",
    ),
) -> None:
    """Prune, quantise and/or distil RUN_DIR/best and compare every variant on the test split."""
    from ..compress import compress_run
    from ..config import parse_config

    cfg = _run_config(run_dir)
    section = (cfg or _defaults()).compress.model_dump()
    if methods is not None:
        section["methods"] = _split(methods, "--methods")
    if sparsity is not None:
        section["sparsity"] = sparsity
    if unstructured:
        section["structured"] = False
    if quantize_mode is not None:
        section["quantize_mode"] = quantize_mode
    if threads is not None:
        section["latency_threads"] = threads
    config = parse_config({"compress": section}).compress
    result = compress_run(
        run_dir, config=config, run_config=cfg, log=lambda m: typer.echo(m, err=True)
    )
    from .._console import terminal_width

    # Not a terminal (a pipe, a log): the whole table; a narrow terminal: one block per variant.
    typer.echo(result.table.format(width=terminal_width()))
    typer.echo(f"saved: {result.out_dir}/table.json, table.csv and one folder per variant")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run or training directory (holds best/)."),
    formats: list[str] = typer.Option(
        None,
        "--format",
        "-f",
        help="onnx or torchscript (repeat for both; default deploy.formats).",
    ),
    int8: bool = typer.Option(
        False, "--int8", help="Also write model.int8.onnx (ONNX Runtime int8, parity-checked)."
    ),
) -> None:
    """Export RUN_DIR/best to RUN_DIR/export, failing if the export does not match the model."""
    from ..deploy import export_run

    cfg = _run_config(run_dir)
    chosen = list(formats or (cfg or _defaults()).deploy.formats)
    for fmt in chosen:
        if fmt not in ("onnx", "torchscript"):
            raise ConfigError(f"config error: --format {fmt!r} — expected onnx or torchscript")
    if int8:
        chosen.append("int8")
    results = export_run(run_dir, chosen, run_config=cfg, log=lambda m: typer.echo(m, err=True))
    for r in results:
        typer.echo(f"{r.format}: {r.path}  parity ok: {r.parity.describe()}")


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="A run or training directory."),
    host: str | None = typer.Option(None, "--host", help="Default deploy.host (127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Default deploy.port (8000)."),
    model: str | None = typer.Option(
        None, "--model", help="best, onnx, int8, or a model folder / .onnx file."
    ),
    max_rows: int | None = typer.Option(None, "--max-rows", help="Rows per request limit."),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", help="Request body size limit in bytes."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Inference threads."),
    log_level: str = typer.Option(
        "info", "--log-level", help="uvicorn log level (warning hides the per-request lines)."
    ),
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health, GET /metadata, docs at /docs."""
    from ..deploy import serve as run_server

    deploy = (_run_config(run_dir) or _defaults()).deploy
    run_server(
        run_dir,
        model=model or deploy.model,
        host=host or deploy.host,
        port=port or deploy.port,
        max_rows=max_rows or deploy.max_rows,
        max_body_bytes=max_body_bytes or deploy.max_body_bytes,
        threads=threads or deploy.threads,
        log_level=log_level,
    )
