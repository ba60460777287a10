"""``diagnose_config``: what ``tunelab doctor CONFIG [--fix]`` does.

A short diagnostic training with the doctor attached (early stopping off, so the whole curve is
seen), ``check_data`` on the prepared split and a quick baseline on the same split (the
reference "underfitting" is judged against). With ``fix`` the doctor repairs like an expert
(AUTOTRAINER's repair loop, ../shared/DIAGNOSIS-HEURISTICS.md): **one cause per round** -- the
root cause's prescription, not the union of every finding's; for a learning-rate problem the
prescribed learning rate is measured with the LR range test (``tunelab.train.find_lr``). Each
round's effect on the monitored metric is measured: a change that does not help is **reverted**
and the next prescription tried; a change is kept when the metric improves beyond its sampling
error, or when the problem it treated is gone and the metric did not drop. The returned config is
the best round's, never worse than the starting one. It stops when nothing more is prescribed
(no warning or error left, or every prescription tried) or the rounds are used up.

Everything lands in ``runs/<name>/doctor/``: one training directory per round (``round_0``...),
``fix_rounds.json`` (findings, change, verdict and metric per round, the baseline, why it
stopped) and ``config.yaml`` (the best config, with the user's own epochs and early stopping).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from ..errors import ConfigError
from ..rundir import DoctorDir, RunDir, TrainingDir
from ._baseline import Baseline, quick_baseline
from ._callback import DoctorCallback
from ._data_checks import check_data, name_classes
from ._finding import DiagnosisReport, Finding, merge_findings
from ._remedies import RemedyContext
from ._signals import NOISE_Z, binomial_se

DEFAULT_EPOCHS = 10
# Rounds are a few seconds each on small data, and reverted rounds are part of the search:
# without an explicit diagnose.rounds the doctor allows this many.
# Kinds whose prescription is a learning rate: it is measured by the LR range test.
LR_KINDS = (
    "diverging_loss",
    "exploding_gradients",
    "oscillating_loss",
    "slow_convergence",
    "dead_relu",
)
# Kinds whose remedy raises the learning rate (all the others lower it).
RAISING_KINDS = ("slow_convergence",)
# Metrics where lower is better (the rest are scores).
_LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")


@dataclass
class FixRound:
    """One diagnostic run: the change tried before it, what it found, how well it did, and
    whether the change was kept (``accepted``) or reverted."""

    round: int
    changes: dict[str, Any]
    findings: list[Finding]
    status: str
    reason: str
    metric: str
    value: float | None
    directory: str
    treated: str | None = None  # the finding kind whose prescription this round applied
    accepted: bool = True
    verdict: str = ""
    causes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.is_problem]

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "changes": self.changes,
            "treated": self.treated,
            "accepted": self.accepted,
            "verdict": self.verdict,
            "status": self.status,
            "reason": self.reason,
            "metric": self.metric,
            "value": self.value,
            "directory": self.directory,
            "causes": self.causes,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class DoctorRun:
    """All rounds of ``tunelab doctor``; ``config`` is the best round's config."""

    rounds: list[FixRound] = field(default_factory=list)
    config: ExperimentConfig | None = None
    directory: Path | None = None
    stopped_because: str = ""
    best_round: int = 0
    baseline: Baseline | None = None
    metric_mode: str = "max"
    previous: Path | None = None  # where the previous doctor run was kept (doctor/versions/<N>)
    # The full trainings that confirmed (or undid) the repair: {"start": value, "returned":
    # value, "epochs": n, "kept": bool}; None when no repair needed confirming.
    confirmation: dict[str, Any] | None = None

    @property
    def best(self) -> FixRound:
        """The round whose config is returned (round 0 when nothing helped)."""
        return next((r for r in self.rounds if r.round == self.best_round), self.rounds[0])

    @property
    def repaired(self) -> bool:
        return bool(self.rounds) and not self.best.problems

    @property
    def final(self) -> FixRound:
        """The best round (what ``--fix`` hands back), not merely the last one tried."""
        return self.best

    @property
    def last(self) -> FixRound:
        return self.rounds[-1]


def monitored_metric(cfg: ExperimentConfig, task: str) -> tuple[str, str]:
    """(metric name, "max"|"min"): ``train.monitor`` when it names a validation score,
    else accuracy / R² (the loss is what training minimises, not what the user judges)."""
    monitor = str(cfg.train.monitor or "")
    if monitor.startswith("val_") and monitor != "val_loss":
        mode = "min" if any(monitor.endswith(k) for k in _LOWER_IS_BETTER) else "max"
        return monitor, mode
    return ("val_accuracy" if task == "classification" else "val_r2"), "max"


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
        fix: treat one cause per round, keep what helps, revert what does not.
        rounds: repair rounds at most (default ``diagnose.rounds``, 6).
        directory: where the rounds go (default ``runs/<name>/doctor``).
    """
    from ..data import prepare_data
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
    data_cache: dict[str, tuple[Any, Baseline | None]] = {}

    def data_for(c: ExperimentConfig) -> tuple[Any, Baseline | None]:
        key = json.dumps(c.data.model_dump(mode="json"), sort_keys=True)
        if key not in data_cache:
            bundle = prepare_data(c.data, seed=c.seed)
            data_cache[key] = (bundle, _baseline(bundle, c.seed))
        return data_cache[key]

    bundle, baseline = data_for(cfg)
    metric, mode = monitored_metric(cfg, bundle.task)
    run.metric_mode = mode
    run.baseline = baseline
    n_val = len(bundle.X_val) if len(bundle.X_val) else None
    check_training(cfg, bundle)  # every start check before doctor/ is touched
    run.previous = doctor_dir.archive_previous()
    first = _round(cfg, 0, {}, None, data_for, doctor_dir, n_epochs, metric, mode)
    run.rounds.append(first)
    run.config = cfg
    if not fix:
        run.stopped_because = (
            "no warning or error: the run looks healthy"
            if not first.problems
            else "diagnosis only (use --fix to repair)"
        )
        _write(run)
        return run
    best, best_cfg = first, cfg
    candidates = _candidates(best_cfg, best, data_for, baseline, n_val)
    index = 0
    while True:
        if not best.problems and not candidates:
            run.stopped_because = (
                "no warning or error left and nothing more prescribed"
                if index
                else "no warning or error: the run looks healthy"
            )
            break
        if index >= rounds:
            run.stopped_because = f"{rounds} repair round(s) used"
            break
        if not candidates:
            run.stopped_because = (
                f"every prescription was tried; none improved {metric} beyond its noise"
                if index
                else "no prescription changes the config"
            )
            break
        kind, change = candidates.pop(0)
        try:
            trial_cfg = best_cfg.with_values(change)
        except ConfigError:
            continue  # a prescription this model does not accept: the next one
        index += 1
        try:
            r = _round(trial_cfg, index, change, kind, data_for, doctor_dir, n_epochs, metric, mode)
        except ConfigError:
            index -= 1
            continue
        run.rounds.append(r)
        keep, why = _judge(r, best, kind, mode, n_val)
        r.accepted, r.verdict = keep, why
        if keep:
            best, best_cfg = r, trial_cfg
            run.best_round = r.round
            candidates = _candidates(best_cfg, best, data_for, baseline, n_val)
    run.config = best_cfg
    if run.best_round != 0 and _needs_confirmation(cfg, n_epochs):
        _confirm(run, cfg, best_cfg, data_for, doctor_dir, metric, mode)
    _write(run)
    return run


def _needs_confirmation(cfg: ExperimentConfig, n_epochs: int) -> bool:
    """Whether the rounds were shorter than the training the user will run (or it stops
    early): then the rounds' verdicts may not hold over the whole training."""
    if not cfg.diagnose.confirm:
        return False
    epochs, stopping = int(cfg.train.epochs), cfg.train.early_stopping
    return n_epochs < epochs or (stopping.enabled and int(stopping.patience) < epochs)


def _confirm(
    run: DoctorRun,
    start_cfg: ExperimentConfig,
    best_cfg: ExperimentConfig,
    data_for: Any,
    doctor_dir: DoctorDir,
    metric: str,
    mode: str,
) -> None:
    """Train the config given and the repaired one in full, as ``tunelab train`` would; hand
    back the repair only when it is not worse there (the never-worse promise is about the
    training the user runs, not about the doctor's short rounds)."""
    from ..train import run_training

    values: dict[str, float | None] = {}
    for which, c in (("start", start_cfg), ("returned", best_cfg)):
        bundle, _ = data_for(c)
        quiet = c.with_values({"train.progress": "none", "train.tensorboard": False})
        done = run_training(quiet, bundle=bundle, run_dir=doctor_dir.confirmation(which).path)
        # What the user keeps: the metric at the epoch the checkpoint holds (train.monitor's
        # best), not the best epoch of this metric.
        kept = (done.result.best_metrics or {}).get(metric)
        values[which] = (
            float(kept)
            if isinstance(kept, (int, float)) and math.isfinite(kept)
            else _best_value(done.result, metric, mode)
        )
    before, after = values["start"], values["returned"]
    sign = 1.0 if mode == "max" else -1.0
    worse = after is None or (before is not None and sign * (after - before) < 0)
    run.confirmation = {
        "start": before,
        "returned": after,
        "epochs": int(start_cfg.train.epochs),
        "kept": not worse,
    }
    shown = {k: f"{v:.4f}" if v is not None else "n/a" for k, v in values.items()}
    if worse:
        run.best_round = 0
        run.config = start_cfg
        run.stopped_because += (
            f"; trained in full, the repaired config reached {metric} {shown['returned']} "
            f"against {shown['start']} for the config as given, so the config as given is "
            "returned"
        )
    else:
        run.stopped_because += (
            f"; confirmed in full: {metric} {shown['start']} as given -> {shown['returned']} "
            "repaired"
        )


def _baseline(bundle: Any, seed: int) -> Baseline | None:
    if not len(bundle.X_val):
        return None
    try:
        return quick_baseline(
            bundle.X_train, bundle.y_train, bundle.X_val, bundle.y_val, task=bundle.task, seed=seed
        )
    except Exception:  # the reference is a help, never a reason to fail the diagnosis
        return None


def _round(
    cfg: ExperimentConfig,
    index: int,
    changes: dict[str, Any],
    treated: str | None,
    data_for: Any,
    doctor_dir: DoctorDir,
    n_epochs: int,
    metric: str,
    mode: str,
) -> FixRound:
    """One diagnostic training of ``cfg`` with the doctor, its data checks and its verdict."""
    from ..train import run_training

    bundle, baseline = data_for(cfg)
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
    doctor = DoctorCallback(cfg, baseline=baseline)
    round_dir = doctor_dir.round(index).path
    result = run_training(trial, bundle=bundle, callbacks=[doctor], run_dir=round_dir)
    report = doctor.report or DiagnosisReport()
    full = DiagnosisReport(
        merge_findings(data_findings, report.findings), epochs=report.epochs, steps=report.steps
    )
    full.save(TrainingDir(round_dir).findings)
    value = _best_value(result.result, metric, mode)
    return FixRound(
        index,
        changes,
        full.findings,
        result.result.status,
        result.result.reason,
        metric,
        value,
        str(round_dir),
        treated=treated,
        causes=[f.kind for f in full.causes],
    )


def _best_value(result: Any, metric: str, mode: str) -> float | None:
    """The best value of ``metric`` over the round's epochs (None: never finite)."""
    values = [row.get(metric) for row in getattr(result, "history", []) or []]
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        v = (result.best_metrics or {}).get(metric)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
    return max(values) if mode == "max" else min(values)


def _noise(value: float, n: int | None) -> float:
    """NOISE_Z standard errors of a score on n validation rows (binomial; for scores outside
    0..1, such as a loss, 1% of the value)."""
    if 0.0 <= value <= 1.0:
        se = binomial_se(value, n)
        if se is not None:
            return NOISE_Z * se
    return 0.01 * abs(value)


def _judge(r: FixRound, best: FixRound, treated: str, mode: str, n: int | None) -> tuple[bool, str]:
    """Keep the round's change? Yes when the metric improves beyond its noise, or when the
    treated problem is gone and the metric did not drop (AUTOTRAINER keeps a solution only if
    the problem is gone and accuracy does not drop, and rolls back one that does not help)."""
    name = r.metric
    if r.value is None and best.value is None:
        # Neither run produced the metric (out of memory, NaN): nothing to lose; go on from here
        # (halving the batch twice is how a hard memory limit is reached).
        return True, f"kept: neither run produced {name}; treating on from this change"
    if r.value is None:
        return False, f"reverted: the run did not produce {name} ({r.status})"
    if best.value is None:
        return True, f"kept: {name} {r.value:.4f} where the previous best run produced none"
    sign = 1.0 if mode == "max" else -1.0
    gain = sign * (r.value - best.value)
    noise = _noise(best.value, n)
    move = f"{name} {best.value:.4f} -> {r.value:.4f}"
    # "Gone" counts only for a problem the previous best run had (a run treated for being
    # below the baseline had none: it must improve beyond the noise).
    had = treated in {f.kind for f in best.problems}
    gone = had and treated not in {f.kind for f in r.problems}
    if gain > noise:
        return True, f"kept: {move}, beyond the noise ({noise:.3f})"
    if gain >= 0 and gone:
        return True, f"kept: {move}, {treated} gone"
    if gain < 0:
        return False, f"reverted: {move} is worse"
    return False, f"reverted: {move} is within the noise ({noise:.3f}) and {treated} remains"


def _candidates(
    cfg: ExperimentConfig,
    rnd: FixRound,
    data_for: Any,
    baseline: Baseline | None = None,
    n_val: int | None = None,
) -> list[tuple[str, dict]]:
    """Prescriptions to try next, one cause at a time: each root cause's (the learning rate
    measured by the range test first, then the remedy's own step), then the consequences'.

    A run with no warning left that still lies below the baseline beyond the noise is not
    done: it is still learning (it would be underfitting if it had settled), so it is treated
    as under-optimised with the range test's higher learning rate, if it measures one."""
    report = DiagnosisReport(list(rnd.findings))
    if not report.problems:
        if (
            baseline is not None
            and rnd.value is not None
            and rnd.metric in ("val_accuracy", "val_r2")
            and baseline.score - rnd.value > _noise(rnd.value, n_val)
        ):
            # Capacity first (the cheaper question: does a bigger model pay?), then the
            # range test's higher learning rate.
            out = []
            bigger = _capacity_change(cfg)
            if bigger:
                out.append(("underfitting", bigger))
            measured = _measured_lr(cfg, data_for, raise_=True)
            if measured is not None:
                out.append(("underfitting", {"train.lr": measured}))
            return out
        return []
    ordered = report.causes + [f for f in report.problems if f not in report.causes]
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for f in ordered:
        change = {k: v for k, v in (f.config_change or {}).items() if _current(cfg, k) != v}
        options = []
        if f.kind in LR_KINDS and "train.lr" in change:
            measured = _measured_lr(cfg, data_for, raise_=f.kind in RAISING_KINDS)
            if measured is not None:
                options.append({**change, "train.lr": measured})
        if change:
            options.append(change)
        for option in options:
            key = json.dumps(option, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append((f.kind, option))
    return out


def _capacity_change(cfg: ExperimentConfig) -> dict[str, Any]:
    """The add_capacity remedy's change for ``cfg`` (a wider/deeper model), or {}."""
    from ._remedies import prescribe

    ctx = RemedyContext(config=cfg, train=cfg.train, weight_decay=float(cfg.train.weight_decay))
    try:
        from ..models import builder_parameters

        ctx.builder_params = set(builder_parameters(cfg.model.builder))
    except Exception:  # a custom builder we cannot inspect
        ctx.builder_params = None
    f = prescribe(Finding("underfitting", "warning", "below the baseline"), ctx)
    return {k: v for k, v in (f.config_change or {}).items() if _current(cfg, k) != v}


_LR_CACHE: dict[str, float | None] = {}


def _measured_lr(cfg: ExperimentConfig, data_for: Any, *, raise_: bool) -> float | None:
    """The LR range test's suggestion for ``cfg`` (``tunelab train --find-lr``), when it moves
    the learning rate the way the remedy wants (down for instability, up for slow steps)."""
    import torch

    from ..models import build_from_config
    from ..train import find_lr

    key = json.dumps(
        [cfg.model.model_dump(mode="json"), cfg.train.model_dump(mode="json"), cfg.seed],
        sort_keys=True,
        default=str,
    )
    if key not in _LR_CACHE:
        bundle, _ = data_for(cfg)
        try:
            torch.manual_seed(cfg.seed)
            model, _ = build_from_config(cfg.model, bundle)
            result = find_lr(model, bundle, cfg.train, steps=100, seed=cfg.seed)
            value = float(f"{result.suggestion:.3g}")
            _LR_CACHE[key] = value if math.isfinite(value) and value > 0 else None
        except Exception:  # the range test is a help: without it the remedy's own step is used
            _LR_CACHE[key] = None
    value = _LR_CACHE[key]
    lr = float(cfg.train.lr)
    if value is None:
        return None
    if raise_ and value > 1.5 * lr:
        return value
    if not raise_ and value < lr / 1.5:
        return value
    return None


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
    names = list(getattr(bundle, "classes", None) or [])
    for f in found:
        if f.kind == "class_imbalance" and names:
            name_classes(f, names)
        # Class weights do not change the data: once applied, the imbalance is treated.
        if f.kind == "class_imbalance" and f.is_problem and not f.config_change:
            f.severity = "info"
            f.evidence += " (treated: train.class_weights = balanced)"
    return found


def _current(cfg: ExperimentConfig, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def _write(run: DoctorRun) -> None:
    out = run.directory
    best = run.best if run.rounds else None
    payload = {
        "repaired": run.repaired,
        "stopped_because": run.stopped_because,
        "metric": best.metric if best else None,
        "metric_mode": run.metric_mode,
        "best_round": run.best_round,
        "start_value": run.rounds[0].value if run.rounds else None,
        "best_value": best.value if best else None,
        "baseline": run.baseline.to_dict() if run.baseline else None,
        "confirmation": run.confirmation,
        "rounds": [r.to_dict() for r in run.rounds],
    }
    doctor_dir = DoctorDir(out)
    doctor_dir.fix_rounds.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if run.config is not None:
        doctor_dir.repaired_config.write_text(run.config.to_yaml(), encoding="utf-8")
