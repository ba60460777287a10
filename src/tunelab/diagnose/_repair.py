"""``diagnose_config``: what ``tunelab doctor CONFIG [--fix]`` does.

A short diagnostic training with the doctor attached (early stopping off, so the whole curve is
seen) plus ``check_data`` on the prepared split. With ``fix``, the prescriptions of the warnings
and errors are applied to the config and the run repeats, up to ``rounds`` times or until no
warning or error remains. Everything lands in ``runs/<name>/doctor/``: one training directory
per round (``round_0``...), ``fix_rounds.json`` (findings and val metric per round) and
``config.yaml`` (the repaired config, with the user's own epochs and early stopping).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from ..errors import ConfigError
from ..rundir import DoctorDir, RunDir, TrainingDir
from ._callback import DoctorCallback
from ._data_checks import check_data
from ._finding import DiagnosisReport, Finding, merge_findings, severity_rank
from ._remedies import RemedyContext

# When two prescriptions set the same field, the more severe finding wins; on a tie, the kind
# listed first (instability before capacity: a run must be stable before it can be judged).
KIND_PRIORITY = (
    "nan_or_inf_data",
    "memory_pressure",
    "diverging_loss",
    "exploding_gradients",
    "dead_relu",
    "vanishing_gradients",
    "saturated_activations",
    "oscillating_loss",
    "unscaled_inputs",
    "data_leakage",
    "class_imbalance",
    "slow_convergence",
    "underfitting",
    "overfitting",
    "data_bottleneck",
    "constant_features",
)
DEFAULT_EPOCHS = 10


@dataclass
class FixRound:
    """One diagnostic run: the changes applied before it, what it found, how well it did."""

    round: int
    changes: dict[str, Any]
    findings: list[Finding]
    status: str
    reason: str
    metric: str
    value: float | None
    directory: str

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.is_problem]

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "changes": self.changes,
            "status": self.status,
            "reason": self.reason,
            "metric": self.metric,
            "value": self.value,
            "directory": self.directory,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class DoctorRun:
    """All rounds of ``tunelab doctor``; ``config`` is the (repaired) config."""

    rounds: list[FixRound] = field(default_factory=list)
    config: ExperimentConfig | None = None
    directory: Path | None = None
    stopped_because: str = ""
    previous: Path | None = None  # where the previous doctor run was kept (doctor/versions/<N>)

    @property
    def repaired(self) -> bool:
        return bool(self.rounds) and not self.rounds[-1].problems

    @property
    def final(self) -> FixRound:
        return self.rounds[-1]


def diagnose_config(
    cfg: ExperimentConfig,
    *,
    epochs: int | None = None,
    fix: bool = False,
    rounds: int | None = None,
    directory: str | Path | None = None,
) -> DoctorRun:
    """Diagnose (and with ``fix`` repair) the training ``cfg`` describes.

    Args:
        cfg: a plain experiment config (no search spaces).
        epochs: epochs per diagnostic run (default ``diagnose.epochs``, else
            ``min(train.epochs, 10)``).
        fix: apply the prescriptions and re-run until healthy or out of rounds.
        rounds: repair rounds at most (default ``diagnose.rounds``).
        directory: where the rounds go (default ``runs/<name>/doctor``).
    """
    from ..data import prepare_data
    from ..train import run_training
    from ..train._run import check_training

    spaces = cfg.search_spaces()
    if spaces:
        raise ConfigError(
            f"config error: {next(iter(spaces))} is a search space; `tunelab doctor` needs plain "
            "values (diagnose one trial's config, or run `tunelab tune` with diagnose.enabled)"
        )
    doctor_dir = DoctorDir(directory) if directory is not None else RunDir.for_config(cfg).doctor
    out = doctor_dir.path  # touched only once round 0's checks passed (nothing lost)
    rounds = int(rounds if rounds is not None else cfg.diagnose.rounds)
    n_epochs = int(epochs or cfg.diagnose.epochs or min(int(cfg.train.epochs), DEFAULT_EPOCHS))
    run = DoctorRun(directory=out)
    bundle, bundle_key = None, None
    changes: dict[str, Any] = {}
    for index in range(rounds + 1 if fix else 1):
        key = json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)
        if bundle is None or key != bundle_key:
            bundle, bundle_key = prepare_data(cfg.data, seed=cfg.seed), key
        data_findings = _data_findings(bundle, cfg)
        trial = cfg.with_values(
            {
                "train.epochs": n_epochs,
                "train.early_stopping.enabled": False,
                "train.progress": "none",
                "train.tensorboard": False,
                "diagnose.enabled": True,
            }
        )
        doctor = DoctorCallback(cfg)
        round_dir = doctor_dir.round(index).path
        if index == 0:
            check_training(trial, bundle)
            run.previous = doctor_dir.archive_previous()
        try:
            result = run_training(trial, bundle=bundle, callbacks=[doctor], run_dir=round_dir)
        except ConfigError:
            if index == 0:
                raise  # the user's own config is invalid: one line at the CLI
            run.stopped_because = f"the changes of round {index} do not fit this model; reverted"
            break
        report = doctor.report or DiagnosisReport()
        findings = DiagnosisReport(merge_findings(data_findings, report.findings)).findings
        metric = "val_accuracy" if bundle.task == "classification" else "val_r2"
        value = result.result.best_metrics.get(metric)
        DiagnosisReport(findings, epochs=report.epochs, steps=report.steps).save(
            TrainingDir(round_dir).findings
        )
        run.rounds.append(
            FixRound(
                index,
                changes,
                findings,
                result.result.status,
                result.result.reason,
                metric,
                float(value) if value is not None else None,
                str(round_dir),
            )
        )
        run.config = cfg
        if not run.rounds[-1].problems:
            run.stopped_because = "no warning or error left"
            break
        if not fix:
            run.stopped_because = "diagnosis only (use --fix to repair)"
            break
        if index == rounds:
            run.stopped_because = f"{rounds} repair round(s) used"
            break
        changes, cfg = _apply(cfg, run.rounds[-1].problems)
        if not changes:
            run.stopped_because = "no prescription left that changes the config"
            break
    _write(run)
    return run


def _data_findings(bundle: Any, cfg: ExperimentConfig) -> list[Finding]:
    """``check_data`` on the prepared splits, prescribed against ``cfg``."""
    as_np = lambda t: t.detach().cpu().numpy() if t is not None else None  # noqa: E731
    test = bundle.X_test if len(bundle.X_test) else None
    found = check_data(
        as_np(bundle.X_train),
        as_np(bundle.y_train),
        as_np(bundle.X_val) if len(bundle.X_val) else None,
        as_np(bundle.y_val) if len(bundle.y_val) else None,
        task=bundle.task,
        X_test=as_np(test) if test is not None else None,
        context=RemedyContext(config=cfg, train=cfg.train),
    )
    for f in found:
        # Class weights do not change the data: once applied, the imbalance is treated.
        if f.kind == "class_imbalance" and f.is_problem and not f.config_change:
            f.severity = "info"
            f.evidence += " (treated: train.class_weights = balanced)"
    return found


def _apply(
    cfg: ExperimentConfig, problems: list[Finding]
) -> tuple[dict[str, Any], ExperimentConfig]:
    """Merge the prescriptions (worst first) and apply those the config accepts."""
    order = sorted(
        problems,
        key=lambda f: (
            -severity_rank(f.severity),
            KIND_PRIORITY.index(f.kind) if f.kind in KIND_PRIORITY else len(KIND_PRIORITY),
        ),
    )
    merged: dict[str, Any] = {}
    for f in order:
        for path, value in (f.config_change or {}).items():
            merged.setdefault(path, value)
    merged = {k: v for k, v in merged.items() if _current(cfg, k) != v}
    while merged:
        try:
            return merged, cfg.with_values(merged)
        except ConfigError as exc:
            bad = (
                exc.field
                if exc.field in merged
                else next((k for k in merged if exc.field and exc.field.startswith(k)), None)
            )
            if bad is None:
                bad = next(iter(merged))
            merged.pop(bad)
    return {}, cfg


def _current(cfg: ExperimentConfig, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def _write(run: DoctorRun) -> None:
    out = run.directory
    payload = {
        "repaired": run.repaired,
        "stopped_because": run.stopped_because,
        "rounds": [r.to_dict() for r in run.rounds],
    }
    doctor_dir = DoctorDir(out)
    doctor_dir.fix_rounds.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if run.config is not None:
        doctor_dir.repaired_config.write_text(run.config.to_yaml(), encoding="utf-8")
