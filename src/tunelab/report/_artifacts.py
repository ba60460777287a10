"""Read a run directory into plain data, tolerating whatever is missing or half-written.

A report is often made while the run is still going (a study with trials running, a trainer
mid-epoch) or after only some stages ran. So every reader here returns ``None`` (or an empty
collection) for what is absent and records *why* in :attr:`RunArtifacts.notes`, instead of
raising: the renderer turns those notes into "this section is missing because ..." lines.

Where each file lives is asked of :class:`tunelab.rundir.RunDir` / ``TrainingDir`` (the layout
of docs/contracts.md, "Directories"); files of a stage that has a typed loader are read with it
(``DiagnosisReport.load``, ``CompressionTable.load``), then handed to the renderers as plain
dicts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..rundir import RunDir, TrainingDir
from ._grad_norms import grad_norms_from_tensorboard

# Where the tuner records a trial's end reason (user attributes), then Optuna's own.
_REASON_KEYS = ("reason", "error", "fail_reason")


@dataclass
class TrainingArtifacts:
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
    resolved_config: dict[str, Any] | None = None
    data_profile: dict[str, Any] | None = None
    study: Any = None  # optuna.Study, typed loosely so optuna is imported only when needed
    study_path: Path | None = None
    best_trial_number: int | None = None
    best: TrainingArtifacts | None = None
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
    def run(self) -> RunDir:
        return RunDir(self.path)

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


def read_findings(path: Path) -> list[dict[str, Any]] | None:
    """``findings.json`` through ``DiagnosisReport.load``, as finding dicts; None when absent.

    Raises ``ValueError`` naming the file when it is not a doctor's report.
    """
    if not path.is_file():
        return None
    from ..diagnose import DiagnosisReport

    try:
        report = DiagnosisReport.load(path)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path.name} is not a doctor's report ({exc})") from None
    return [f.to_dict() for f in report.findings]


def _json_or_note(path: Path, notes: dict[str, str], key: str) -> Any:
    """``read_json`` that records a corrupt file under ``notes[key]`` instead of raising."""
    try:
        return read_json(path)
    except ValueError as exc:
        notes[key] = str(exc)
        return None


# ---- loaders --------------------------------------------------------------------------------


def load_training_dir(tdir: TrainingDir, notes: dict[str, str] | None = None) -> TrainingArtifacts:
    """Read one training directory; unreadable files are noted, never raised."""
    notes = notes if notes is not None else {}
    art = TrainingArtifacts(path=tdir.path)
    art.config = read_yaml(tdir.config)
    art.metrics = read_jsonl(tdir.metrics)
    art.result = _json_or_note(tdir.result, notes, tdir.result.name)
    try:
        art.findings = read_findings(tdir.findings)
    except ValueError as exc:
        notes[tdir.findings.name] = str(exc)
    art.model_json = _model_json(tdir.best_model)
    # The trainer writes gradient norms to TensorBoard only (never to metrics.jsonl).
    art.grad_norms, art.grad_norms_x = grad_norms_from_tensorboard(tdir.tensorboard)
    if art.grad_norms:
        art.grad_norms_source = "TensorBoard events"
    return art


def _model_json(model_dir: Path) -> dict[str, Any] | None:
    """The ``model.json`` of a saved model folder (the models stage's reader), else None."""
    from ..errors import FatalError
    from ..models import read_metadata

    if not model_dir.is_dir():
        return None
    try:
        return read_metadata(model_dir)
    except FatalError:
        return None


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
            result = read_json(TrainingDir(trial_dir).result)
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
    run = RunDir(path)
    art = RunArtifacts(path=run.path)
    notes = art.notes
    art.config = read_yaml(run.config)
    art.resolved_config = _resolved_config(run)
    art.run_info = _json_or_note(run.run_info, notes, "run_info")
    art.data_profile = _json_or_note(run.data_profile, notes, "data")
    art.trial_dirs = {n: t.path for n, t in run.trials().items()}
    try:
        art.tune_summary = read_json(run.tune_summary)
    except ValueError:
        art.tune_summary = None  # a study still running rewrites it at the end
    if run.study_db.is_file():
        art.study_path = run.study_db
        try:
            art.study = load_study(run.study_db, (art.config or {}).get("name"))
            art.best_trial_number = best_trial_number(art.study)
        except Exception as exc:  # a locked or foreign SQLite file: say so, keep going
            notes["search"] = f"study.db could not be read as an Optuna study ({exc})"
    _load_best(run, art)
    art.fix_rounds = _json_or_note(run.fix_rounds, notes, "doctor")
    art.repaired_config = read_yaml(run.repaired_config)
    art.compression = _compression_rows(run, notes)
    if run.export_dir.is_dir():
        art.export_dir = run.export_dir
        art.export_files = sorted(p for p in run.export_dir.rglob("*") if p.is_file())
        art.export_model_json = _model_json(run.export_dir)
    return art


def _resolved_config(run: RunDir) -> dict[str, Any] | None:
    """``RunDir.resolved_config()`` as plain data (``best/config.yaml`` after tuning)."""
    from ..errors import FatalError

    try:
        return run.resolved_config().to_dict()
    except FatalError:
        return None  # no config, a tuning run still going, or one written by another version


def _load_best(run: RunDir, art: RunArtifacts) -> None:
    """The training whose curves describe the best model, with the run root's files on top."""
    tdir = _best_training_dir(run, art)
    if tdir is None:
        return
    art.best = load_training_dir(tdir, art.notes)
    if tdir.path == run.path:
        return
    # The run root's result.json (the test-split evaluation) and best/ win over the trial's.
    top = _json_or_note(run.result, art.notes, run.result.name)
    if isinstance(top, dict):
        art.best.result = {**(art.best.result or {}), **top}
    root_model = _model_json(run.best_model)
    if root_model:
        art.best.model_json = root_model
    if art.resolved_config is not None and run.best_config.is_file():
        art.best.config = art.resolved_config  # the best trial's config, as tune wrote it


def _best_training_dir(run: RunDir, art: RunArtifacts) -> TrainingDir | None:
    trials = run.trials()
    if art.best_trial_number is not None and art.best_trial_number in trials:
        return _best_fold(trials[art.best_trial_number])
    if run.metrics.is_file() or run.result.is_file():
        return run
    return None


def _best_fold(trial: TrainingDir) -> TrainingDir:
    """A cross-validated trial trains in ``fold_<k>/``; ``best_fold.json`` names the kept one."""
    if trial.metrics.is_file():
        return trial
    try:
        record = read_json(trial.best_fold)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("fold"), str):
        fold = trial.fold_of(record["fold"])
        if fold.metrics.is_file():
            return fold
    first = trial.fold(0)  # no record (a trial written before best_fold.json existed)
    return first if first.metrics.is_file() else trial


def _compression_rows(run: RunDir, notes: dict[str, str]) -> list[dict[str, Any]] | None:
    """``compressed/table.json`` through ``CompressionTable.load``, as row dicts."""
    if not run.compressed_table.is_file():
        return None
    from ..compress import CompressionTable

    try:
        table = CompressionTable.load(run.compressed_table)
    except (ValueError, KeyError, TypeError) as exc:
        notes["compression"] = f"{run.compressed_table.name} could not be read ({exc})"
        return None
    return [row.to_dict() for row in table.rows]
