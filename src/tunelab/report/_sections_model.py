"""Report sections about the model: best model, compression, export and serving."""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..compress._table import format_delta, format_metric
from ..rundir import TrainingDir
from . import _figures as figs
from ._artifacts import RunArtifacts, read_json
from ._page import FigureRegistry, ReportSection, esc, fmt, table
from ._sections_run import _get, _try_plot, task_name, test_metrics

# ---- best model ----------------------------------------------------------------------------


def _class_names(art: RunArtifacts) -> list[str]:
    best = art.best
    for source in (
        _get(best.result if best else None, "classes"),
        _get(best.model_json if best else None, "classes"),
        _get(best.model_json if best else None, "spec", "classes"),
        _get(art.export_model_json, "classes"),
        _get(art.data_profile, "classes"),
    ):
        if isinstance(source, list) and source:
            return [str(c) for c in source]
    return []


def _classification_report(report: Any) -> str:
    if isinstance(report, str):
        return f"<pre>{esc(report)}</pre>"
    if not isinstance(report, dict):
        return ""
    rows = []
    for label, scores in report.items():
        if isinstance(scores, dict):
            rows.append(
                [
                    label,
                    scores.get("precision"),
                    scores.get("recall"),
                    scores.get("f1-score", scores.get("f1")),
                    scores.get("support"),
                ]
            )
        elif isinstance(scores, (int, float)):
            rows.append([label, None, None, scores, None])
    return table(["class", "precision", "recall", "f1", "support"], rows)


def best_model_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("best-model", "Best model")
    best = art.best
    if best is None:
        if art.study is not None:
            sec.missing = (
                "no trial has completed yet, so there is no best model"
                if art.best_trial_number is None
                else f"the best trial #{art.best_trial_number} has no directory under trials/"
            )
        else:
            sec.missing = (
                "no metrics.jsonl or result.json: nothing has been trained in this directory"
            )
        return sec
    result = best.result or {}
    if best.path == art.path:
        intro = "Trained in this directory"
    else:
        intro = f"Trained in <code>{esc(best.path.relative_to(art.path))}</code>"
    if art.best_trial_number is not None and art.study is not None:
        params = art.study.trials[art.best_trial_number].params
        intro += f" (trial #{art.best_trial_number}: {esc(fmt(params))})"
    sec.add(f"<p>{intro}.</p>")
    facts = [
        [k, result[k]]
        for k in ("status", "reason", "best_epoch", "epochs_run", "wall_time_s")
        if k in result
    ]
    if facts:
        sec.add(table(["", "value"], facts))

    sec.add("<h3>Learning curves</h3>")
    if best.metrics:
        _try_plot(
            sec, reg, "learning_curves", "learning curves", figs.learning_curves, best.metrics
        )
    else:
        sec.gap("learning curves", "metrics.jsonl is missing or empty (training not started?)")

    tests = test_metrics(result)
    best_metrics = result.get("best_metrics")
    if tests or isinstance(best_metrics, dict):
        sec.add("<h3>Metrics</h3>")
        sec.add(_metrics_table(best_metrics if isinstance(best_metrics, dict) else {}, tests))
    if not tests:
        sec.gap("test metrics", "result.json has no test-split evaluation yet")

    classification = task_name(art) != "regression"
    matrix = _find(result, "confusion_matrix")
    if matrix:  # regression runs write an empty one
        sec.add("<h3>Confusion matrix</h3>")
        _try_plot(
            sec,
            reg,
            "confusion_matrix",
            "confusion matrix",
            figs.confusion_matrix,
            matrix,
            _class_names(art),
        )
    elif classification:
        sec.gap("confusion matrix", "result.json has no confusion matrix")
    report = _find(result, "classification_report")
    if report:
        sec.add("<h3>Classification report</h3>")
        sec.add(_classification_report(report))
    elif classification:
        sec.gap("classification report", "result.json has no classification report")

    sec.add("<h3>Per-layer gradient norms</h3>")
    if best.grad_norms:
        x_label = best.grad_norms_x
        sec.add(f'<p class="note">From {esc(best.grad_norms_source)}.</p>')
        _try_plot(
            sec, reg, "grad_norms", "gradient norms", figs.grad_norms, best.grad_norms, x_label
        )
    else:
        sec.gap("gradient norms", "no per-layer gradient norms in metrics.jsonl or tensorboard/")
    return sec


def _metrics_table(best: dict[str, Any], tests: dict[str, Any]) -> str:
    """Validation metrics at the best epoch next to the same metrics on the test split."""
    names: list[str] = []
    for key in [*best, *tests]:
        name = key.removeprefix("val_").removeprefix("test_")
        if key.startswith(("val_", "test_")) and name not in names:
            names.append(name)
    rows = [[n, best.get(f"val_{n}"), tests.get(f"test_{n}")] for n in names]
    return table(["metric", "validation (best epoch)", "test split"], rows)


def _find(result: dict[str, Any], key: str) -> Any:
    """``key`` at the top of result.json or under its test-evaluation block."""
    for block in (result, result.get("test_metrics"), result.get("test"), result.get("evaluation")):
        if isinstance(block, dict) and block.get(key) is not None:
            return block[key]
    return None


# ---- compression ---------------------------------------------------------------------------


def _size(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _compression_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """tunelab's CompressionRow columns, readable; unknown row shapes pass through as they are."""
    if not all("variant" in r and "b64_p50_ms" in r for r in rows):
        headers = list(dict.fromkeys(k for r in rows for k in r))
        return headers, [
            [fmt(r.get(h)) if isinstance(r.get(h), list) else r.get(h) for h in headers]
            for r in rows
        ]
    metric = rows[0].get("metric", "metric")
    headers = [
        "variant",
        "methods",
        "format",
        "params",
        "non-zero params",
        "file size",
        "x smaller",
        "b1 p50 / p95 ms",
        "b64 p50 / p95 ms",
        "rows/s (b64)",
        "x faster (b64)",
        f"test {metric}",
        "delta",
        "notes",
    ]
    body = []
    for r in rows:
        body.append(
            [
                r["variant"],
                "+".join(r.get("methods") or []) or "-",
                r.get("format"),
                r.get("params"),
                r.get("nonzero_params"),
                _size(float(r.get("file_bytes") or 0)),
                r.get("size_ratio"),
                f"{fmt(r.get('b1_p50_ms'))} / {fmt(r.get('b1_p95_ms'))}",
                f"{fmt(r.get('b64_p50_ms'))} / {fmt(r.get('b64_p95_ms'))}",
                r.get("throughput_rows_s"),
                r.get("speedup_b64"),
                format_metric(metric, r.get("test_metric")),
                format_delta(metric, r.get("delta")),
                r.get("notes", ""),
            ]
        )
    return headers, body


def compression_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("compression", "Compression")
    rows = art.compression
    if not rows:
        sec.missing = art.notes.get("compression") or (
            "no compressed/table.json: run `tunelab compress RUN_DIR` to prune, quantise or distil"
        )
        return sec
    headers, body = _compression_rows(rows)
    sec.add(table(headers, body, table_id="compression-table"))
    sec.add(
        '<p class="note">Measured on the test split; latencies per call with warm-up excluded; '
        "ratios relative to the first row.</p>"
    )
    keys = list(dict.fromkeys(k for r in rows for k in r))
    name_key = _pick(keys, "variant", "name", "method") or keys[0]
    x_key = _pick(keys, "b64_p50_ms", "p50", "latency")
    y_key = _pick(keys, "test_metric", "test_accuracy", "accuracy", "metric")
    size_key = _pick(keys, "file_bytes", "size_mb", "bytes")
    if x_key and y_key:
        _try_plot(
            sec,
            reg,
            "compression_tradeoff",
            "trade-off plot",
            figs.compression_tradeoff,
            rows,
            name_key,
            x_key,
            y_key,
            size_key,
        )
    else:
        sec.gap("trade-off plot", "the table has no latency or metric column")
    return sec


def _pick(keys: list[str], *needles: str) -> str | None:
    for needle in needles:
        for key in keys:
            if needle in key.lower():
                return key
    return None


# ---- export and serving --------------------------------------------------------------------


def example_request(art: RunArtifacts) -> dict[str, Any] | None:
    """A valid ``POST /predict`` body from the deploy stage's input schema for this model."""
    trained = TrainingDir(art.best.path).best_model if art.best else None
    for folder in (art.export_dir, art.run.best_model, trained):
        if folder is None or not (folder / "model.json").is_file():
            continue
        try:
            from ..data import Preprocessing
            from ..deploy import schema_for
            from ..models import ModelSpec

            spec = ModelSpec.from_dict(read_json(folder / "model.json"))
            pre_path = folder / "preprocessing.json"
            pre = Preprocessing.load(pre_path) if pre_path.is_file() else None
            return schema_for(pre, spec).example()
        except Exception:  # an older or foreign model.json: fall back to the generic form
            continue
    return None


def deploy_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("deploy", "Export and serving")
    run = shlex.quote(str(art.path))
    best_saved = (art.run.best_model / "model.json").is_file()
    if art.export_dir is None and not best_saved:
        sec.missing = "no export/ and no saved best model (best/): nothing to serve yet"
        return sec
    exports = _get(art.export_model_json, "exports") or {}
    if art.export_files:
        body = []
        for p in art.export_files:
            fmt_name = next((k for k, v in exports.items() if v.get("file") == p.name), "")
            parity = _get(exports, fmt_name, "parity") or {}
            check = ""
            if parity:
                check = ("passed: " if parity.get("passed") else "FAILED: ") + fmt(
                    {
                        k: parity.get(k)
                        for k in ("max_abs_diff", "mismatch_rate", "tolerance", "rows")
                    }
                )
            body.append([str(p.relative_to(art.path)), fmt_name, _size(p.stat().st_size), check])
        sec.add(
            table(
                ["file", "format", "size", "parity check against PyTorch"],
                body,
                table_id="export-table",
            )
        )
    else:
        sec.gap("export", "no export/ folder: run `tunelab export RUN_DIR --format onnx`")
    has = {
        k
        for k in exports
        if (art.export_dir and (art.export_dir / exports[k].get("file", "")).is_file())
    }
    model = "onnx" if "onnx" in has else ("int8" if "int8" in has else "best")
    port = _get(art.config, "deploy", "port") or 8000
    host = _get(art.config, "deploy", "host") or "127.0.0.1"
    url = f"http://{host}:{port}"
    example = example_request(art)
    body_text = json.dumps(example if example is not None else {"rows": ["<one input row>"]})
    inline = len(body_text) <= 1200
    commands = [
        f"tunelab serve {run} --model {model} --host {host} --port {port}",
        f"curl -s {url}/health",
        f"curl -s {url}/metadata",
        f"curl -s -X POST {url}/predict -H 'content-type: application/json' -d "
        + (shlex.quote(body_text) if inline else "@request.json"),
    ]
    sec.add("<h3>Serve it</h3>")
    sec.add(f'<pre id="serve-commands">{esc(chr(10).join(commands))}</pre>')
    if not inline:
        sec.add("<details><summary>request.json (one valid row)</summary>")
        sec.add(f"<pre>{esc(body_text)}</pre></details>")
    sec.add(f'<p class="note">OpenAPI docs at <code>{esc(url)}/docs</code> while it runs.</p>')
    return sec
