"""Read a run directory into plain data, tolerating whatever is missing or half-written.

A report is often made while the run is still going (a study with trials running, a trainer
mid-epoch) or after only some stages ran. So every reader here returns ``None`` (or an empty
collection) for what is absent and records *why* in :attr:`RunArtifacts.notes`, instead of
raising: the renderer turns those notes into "this section is missing because ..." lines.

The layout read is the one of ``docs/contracts.md`` ("Directories"): a *training directory*
(``metrics.jsonl``, ``result.json``, ``findings.json``, ``tensorboard/``, ``best/``) and a *run
directory* that may add ``data_profile.json``, ``study.db``, ``trials/<n>/``, ``doctor/``,
``compressed/`` and ``export/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Keys under which stages may record a trial's end reason (ours first, then Optuna's own).
_REASON_KEYS = ("reason", "status_reason", "prune_reason", "pruned_reason", "error", "fail_reason")


@dataclass
class TrainingDir:
    """What one training directory (a ``tunelab train`` run or one trial) left on disk."""

    path: Path
    config: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    findings: list[dict[str, Any]] | None = None
    model_json: dict[str, Any] | None = None
    grad_norms: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    grad_norms_source: str | None = None
    grad_norms_x: str = "epoch"


@dataclass
class RunArtifacts:
    """Everything the report can show about one run directory, plus why parts are absent."""

    path: Path
    config: dict[str, Any] | None = None
    data_profile: dict[str, Any] | None = None
    study: Any = None  # optuna.Study, typed loosely so optuna is imported only when needed
    study_path: Path | None = None
    best_trial_number: int | None = None
    best: TrainingDir | None = None
    trial_dirs: dict[int, Path] = field(default_factory=dict)
    fix_rounds: Any = None
    repaired_config: dict[str, Any] | None = None
    compression: list[dict[str, Any]] | None = None
    export_dir: Path | None = None
    export_files: list[Path] = field(default_factory=list)
    export_model_json: dict[str, Any] | None = None
    run_info: dict[str, Any] | None = None
    tune_summary: dict[str, Any] | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def is_study(self) -> bool:
        return self.study is not None


# ---- small tolerant readers -----------------------------------------------------------------


def read_json(path: Path) -> Any:
    """Parsed JSON, or ``None`` when the file is absent; raises ``ValueError`` when corrupt."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_nan_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} is not valid JSON ({exc})") from None


def _nan_constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (a writer mid-append) is skipped, not fatal."""
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line, parse_constant=_nan_constant)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _findings_list(data: Any) -> list[dict[str, Any]] | None:
    """``findings.json`` as a list of finding dicts, whether written bare or wrapped."""
    if data is None:
        return None
    if isinstance(data, dict):
        data = data.get("findings", [])
    return [f for f in data if isinstance(f, dict)] if isinstance(data, list) else None


# ---- gradient norms: metrics.jsonl first, TensorBoard events second -------------------------

_GRAD_KEY = re.compile(r"^(?:grad_norm|grad-norm|gradnorm|grad_norms|gradients?)[/.:](.+)$")


def grad_norms_from_metrics(
    rows: list[dict[str, Any]],
) -> dict[str, list[tuple[float, float]]]:
    """Per-layer gradient norms per epoch from ``metrics.jsonl`` (flat keys or a nested dict)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows):
        x = float(row.get("epoch", i + 1))
        for key, value in row.items():
            if isinstance(value, dict) and key in ("grad_norm", "grad_norms", "gradient_norms"):
                items = [(str(k), v) for k, v in value.items()]
            else:
                match = _GRAD_KEY.match(key)
                items = [(match.group(1), value)] if match else []
            for layer, v in items:
                if isinstance(v, (int, float)) and math.isfinite(v):
                    series.setdefault(layer, []).append((x, float(v)))
    return series


def grad_norms_from_tensorboard(logdir: Path) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """Per-layer gradient norms per epoch (or step) from TensorBoard event files.

    Three shapes are understood, best first: histograms *of norms* tagged ``grad_norm/<layer>``
    (what tunelab's trainer writes: a few sampled norms per epoch; their mean is taken), scalars
    tagged ``.../grad_norm/<layer>``, and histograms of raw gradient *values* tagged
    ``grad/<layer>`` or ``gradients/<layer>``, whose norm is ``sqrt(sum_squares)`` exactly.
    Returns the series and what their x axis is (the event step: an epoch for tunelab's trainer).
    """
    files = list(logdir.rglob("events.out.tfevents.*")) if logdir.is_dir() else []
    if not files:
        return {}, ""
    from tensorboard.backend.event_processing import event_accumulator as ea

    of_norms: dict[str, list[tuple[float, float]]] = {}
    scalars: dict[str, list[tuple[float, float]]] = {}
    of_values: dict[str, list[tuple[float, float]]] = {}
    for events_dir in sorted({p.parent for p in files}):
        acc = ea.EventAccumulator(str(events_dir), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        try:
            acc.Reload()
        except Exception:  # a torn event file must not sink the whole report
            continue
        tags = acc.Tags()
        for tag in tags.get("histograms", []):
            layer = _norm_layer(tag)
            if layer is not None:
                for e in acc.Histograms(tag):
                    h = e.histogram_value
                    if h.num > 0:
                        of_norms.setdefault(layer, []).append((float(e.step), h.sum / h.num))
                continue
            match = _VALUES_TAG.search(tag)
            if match:
                of_values.setdefault(match.group(1), []).extend(
                    (float(e.step), math.sqrt(max(e.histogram_value.sum_squares, 0.0)))
                    for e in acc.Histograms(tag)
                )
        for tag in tags.get("scalars", []):
            layer = _norm_layer(tag)
            if layer is not None:
                scalars.setdefault(layer, []).extend(
                    (float(e.step), float(e.value)) for e in acc.Scalars(tag)
                )
    series = of_norms or scalars or of_values
    x_label = "epoch" if series is of_norms else "step"
    return {k: sorted(v) for k, v in series.items() if v}, x_label


_NORM_TAG = re.compile(r"grad(?:ient)?[_-]?norms?/(.+)$", re.IGNORECASE)
_VALUES_TAG = re.compile(r"(?:^|/)grad(?:ient)?s?/(.+)$", re.IGNORECASE)


def _norm_layer(tag: str) -> str | None:
    match = _NORM_TAG.search(tag)
    return match.group(1) if match else None


# ---- loaders --------------------------------------------------------------------------------


def load_training_dir(path: Path, notes: dict[str, str] | None = None) -> TrainingDir:
    """Read one training directory; unreadable files are noted, never raised."""
    notes = notes if notes is not None else {}
    tdir = TrainingDir(path=path)
    tdir.config = read_yaml(path / "config.yaml")
    tdir.metrics = read_jsonl(path / "metrics.jsonl")
    for name, attr in (("result.json", "result"), ("findings.json", "findings")):
        try:
            data = read_json(path / name)
        except ValueError as exc:
            notes[name] = str(exc)
            continue
        setattr(tdir, attr, _findings_list(data) if attr == "findings" else data)
    for candidate in (path / "best" / "model.json", path / "model.json"):
        try:
            tdir.model_json = read_json(candidate)
        except ValueError:
            tdir.model_json = None
        if tdir.model_json:
            break
    tdir.grad_norms = grad_norms_from_metrics(tdir.metrics)
    if tdir.grad_norms:
        tdir.grad_norms_source = "metrics.jsonl"
    else:
        tdir.grad_norms, tdir.grad_norms_x = grad_norms_from_tensorboard(path / "tensorboard")
        if tdir.grad_norms:
            tdir.grad_norms_source = "TensorBoard events"
    return tdir


def trial_reason(trial: Any, trial_dir: Path | None) -> str:
    """Why a trial ended the way it did: its recorded error or reason, else its result.json's.

    tunelab's tuner keeps ``reason`` (the trainer's words), ``error`` (what a failed trial
    raised) and ``sick`` (stopped for NaN/divergence) as user attributes; Optuna itself keeps
    ``fail_reason`` as a system attribute.
    """
    import optuna

    keys = _REASON_KEYS
    if trial.state == optuna.trial.TrialState.FAIL:
        keys = ("error", "fail_reason", *keys)  # the exception says more than the last epoch
    text = ""
    for key in keys:
        value = trial.user_attrs.get(key) or trial.system_attrs.get(key)
        if value:
            text = str(value)
            break
    if not text and trial_dir is not None:
        try:
            result = read_json(trial_dir / "result.json")
        except ValueError:
            result = None
        if isinstance(result, dict) and result.get("reason"):
            text = str(result["reason"])
    if trial.user_attrs.get("sick"):
        text = f"sick trial stopped at once: {text}" if text else "sick trial stopped at once"
    retry_of = trial.system_attrs.get("failed_trial")
    if retry_of is not None:
        text = f"{text} (retry of #{retry_of})".strip()
    return text


def _trial_dirs(run: Path) -> dict[int, Path]:
    trials = run / "trials"
    if not trials.is_dir():
        return {}
    found: dict[int, Path] = {}
    for child in trials.iterdir():
        match = re.fullmatch(r"(?:trial[_-]?)?0*(\d+)", child.name)
        if child.is_dir() and match:
            found[int(match.group(1))] = child
    return found


def load_study(db: Path, name: str | None = None) -> Any:
    """The study called ``name`` in a SQLite file (the run's name), else the newest one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db.resolve()}"
    names = optuna.get_all_study_names(storage=storage)  # in creation order
    if not names:
        raise ValueError("study.db holds no study")
    return optuna.load_study(study_name=name if name in names else names[-1], storage=storage)


def best_trial_number(study: Any) -> int | None:
    """The best completed trial; for several objectives, the Pareto trial best on the first."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial.number
    first = study.directions[0]
    pareto = study.best_trials
    sign = -1.0 if first == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(pareto, key=lambda t: sign * t.values[0]).number


def load_run(path: str | Path) -> RunArtifacts:
    """Read everything a report can show from ``path`` (a run or a training directory)."""
    run = Path(path)
    art = RunArtifacts(path=run)
    notes = art.notes
    art.config = read_yaml(run / "config.yaml")
    try:
        art.run_info = read_json(run / "run_info.json")
    except ValueError as exc:
        notes["run_info"] = str(exc)
    try:
        art.data_profile = read_json(run / "data_profile.json")
    except ValueError as exc:
        notes["data"] = str(exc)

    art.trial_dirs = _trial_dirs(run)
    try:
        art.tune_summary = read_json(run / "tune.json")
    except ValueError:
        art.tune_summary = None  # a study still running rewrites it at the end
    db = run / "study.db"
    if db.is_file():
        art.study_path = db
        try:
            art.study = load_study(db, (art.config or {}).get("name"))
            art.best_trial_number = best_trial_number(art.study)
        except Exception as exc:  # a locked or foreign SQLite file: say so, keep going
            notes["search"] = f"study.db could not be read as an Optuna study ({exc})"

    best_dir = _best_training_dir(run, art)
    if best_dir is not None:
        art.best = load_training_dir(best_dir, notes)
        # The run root's best/ and result.json (evaluation on the test split) win over the trial's.
        if best_dir != run:
            try:
                top = read_json(run / "result.json") or read_json(run / "best" / "result.json")
            except ValueError as exc:
                notes["result.json"] = str(exc)
                top = None
            if isinstance(top, dict):
                art.best.result = {**(art.best.result or {}), **top}
            root_model = run / "best" / "model.json"
            if root_model.is_file():
                with contextlib.suppress(ValueError):
                    art.best.model_json = read_json(root_model)

    doctor = run / "doctor"
    try:
        art.fix_rounds = read_json(doctor / "fix_rounds.json")
    except ValueError as exc:
        notes["doctor"] = str(exc)
    for name in ("repaired.yaml", "fixed.yaml", "config.yaml", "repaired_config.yaml"):
        art.repaired_config = read_yaml(doctor / name)
        if art.repaired_config:
            break

    try:
        table = read_json(run / "compressed" / "table.json")
    except ValueError as exc:
        notes["compression"] = str(exc)
        table = None
    if isinstance(table, dict):
        table = table.get("rows", table.get("variants"))
    if isinstance(table, list):
        art.compression = [r for r in table if isinstance(r, dict)]

    export = run / "export"
    if export.is_dir():
        art.export_dir = export
        art.export_files = sorted(p for p in export.rglob("*") if p.is_file())
        try:
            art.export_model_json = read_json(export / "model.json")
        except ValueError:
            art.export_model_json = None
    return art


def _best_training_dir(run: Path, art: RunArtifacts) -> Path | None:
    """The training directory whose curves describe the best model."""
    if art.best_trial_number is not None and art.best_trial_number in art.trial_dirs:
        return _best_fold(art.trial_dirs[art.best_trial_number])
    if (run / "metrics.jsonl").is_file() or (run / "result.json").is_file():
        return run
    return None


def _best_fold(trial_dir: Path) -> Path:
    """A cross-validated trial trains in ``fold_<k>/``; its ``best/`` is one fold's copy.

    The fold whose weights are byte-identical to the trial's ``best/`` is the one shown.
    """
    folds = sorted(p for p in trial_dir.glob("fold_*") if (p / "metrics.jsonl").is_file())
    if (trial_dir / "metrics.jsonl").is_file() or not folds:
        return trial_dir
    weights = trial_dir / "best" / "model.safetensors"
    if weights.is_file():
        digest = hashlib.sha256(weights.read_bytes()).digest()
        for fold in folds:
            candidate = fold / "best" / "model.safetensors"
            if candidate.is_file() and hashlib.sha256(candidate.read_bytes()).digest() == digest:
                return fold
    return folds[0]
