"""What the doctor reports: :class:`Finding` objects gathered in a :class:`DiagnosisReport`.

A finding names its ``kind`` (one of :data:`KINDS`), how bad it is, the evidence as one readable
sentence plus the raw figures behind it, what to do about it, and the config change that does it.
Reports serialise to plain JSON (``findings.json``) and back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..train import Sickness

Severity = Literal["info", "warning", "error"]

SEVERITIES: tuple[str, ...] = ("info", "warning", "error")

KINDS: tuple[str, ...] = (
    "overfitting",
    "underfitting",
    "vanishing_gradients",
    "exploding_gradients",
    "dead_relu",
    "saturated_activations",
    "diverging_loss",
    "oscillating_loss",
    "slow_convergence",
    "data_bottleneck",
    "memory_pressure",
    "nan_or_inf_data",
    "unscaled_inputs",
    "constant_features",
    "class_imbalance",
    "data_leakage",
)


# What a sick trial's finding says to do (its cause is not analysed, unlike the doctor's).
SICK_REMEDY = "lower train.lr, or set train.clip_grad_norm"


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for error (for sorting and thresholds)."""
    return SEVERITIES.index(severity)


@dataclass
class Finding:
    """One problem the doctor found.

    Args:
        kind: One of :data:`KINDS`.
        severity: ``"info"`` (worth knowing), ``"warning"`` (hurts the result) or ``"error"``
            (the run is broken).
        evidence: One readable sentence with the numbers that support the finding.
        figures: The raw numbers behind ``evidence`` (JSON-able).
        remedy: What to do and why.
        config_change: Dotted config paths -> new values that apply the remedy
            (``{"train.lr": 1e-4}``), or ``None`` when no config setting fixes it.
        first_seen: Where the problem was first detected: ``{"epoch": e, "step": s}``, both
            counted from 1 like the trainer's hooks (``None`` for data checks before training).
        explains: The kinds of the other findings this one explains (it is their cause).
        link_evidence: For each explained kind, how the signals relate (what came first).

    >>> f = Finding("diverging_loss", "error", "loss rose from 2.3 to 41 in 30 steps")
    >>> f.is_problem
    True
    """

    kind: str
    severity: Severity
    evidence: str
    figures: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""
    config_change: dict[str, Any] | None = None
    first_seen: dict[str, int | None] | None = None
    explains: list[str] = field(default_factory=list)
    link_evidence: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; expected one of {KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"severity must be one of {', '.join(SEVERITIES)}, but got {self.severity!r}"
            )

    @property
    def is_problem(self) -> bool:
        """True for warnings and errors (what a healthy run never shows)."""
        return self.severity != "info"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def from_sickness(cls, sickness: Sickness) -> Finding:
        """The error finding of the sick-trial guard's verdict (the only place one is made).

        >>> from tunelab.train import SickTrialPolicy
        >>> s = SickTrialPolicy().judge_epoch(2, {"train_loss": float("nan")}, step=20)
        >>> f = Finding.from_sickness(s)
        >>> f.kind, f.severity, f.first_seen
        ('exploding_gradients', 'error', {'epoch': 2, 'step': 20})
        """
        return cls(
            sickness.kind,
            "error",
            sickness.evidence,
            dict(sickness.figures),
            remedy=SICK_REMEDY,
            first_seen={"epoch": sickness.epoch or None, "step": sickness.step or None},
        )


@dataclass
class DiagnosisReport:
    """The doctor's findings at one moment: root causes first, their consequences under them.

    ``findings`` keeps every finding, ordered problems first, root causes before the findings
    they explain, then by severity. ``causes`` are the problems nothing else explains;
    ``consequences_of(f)`` the problems ``f`` explains. ``summary()`` is a short text view;
    ``problems`` drops the info-level findings.
    """

    findings: list[Finding] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        from ._causes import link_findings, rank_key

        link_findings(self.findings)
        explained = self._explained()
        self.findings = sorted(self.findings, key=lambda f: rank_key(f, explained))

    def _explained(self) -> set[str]:
        return {k for f in self.findings if f.is_problem for k in f.explains}

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    @property
    def problems(self) -> list[Finding]:
        """Warnings and errors only (root causes first)."""
        return [f for f in self.findings if f.is_problem]

    @property
    def causes(self) -> list[Finding]:
        """The root causes: problems no other problem explains, most severe first."""
        explained = self._explained()
        return [f for f in self.problems if f.kind not in explained]

    @property
    def cause(self) -> Finding | None:
        """The first root cause (what to treat first), or None for a healthy run."""
        causes = self.causes
        return causes[0] if causes else None

    def consequences_of(self, finding: Finding | str) -> list[Finding]:
        """The problems ``finding`` (or the finding of that kind) explains."""
        f = self.get(finding) if isinstance(finding, str) else finding
        if f is None:
            return []
        return [g for g in self.problems if g.kind in f.explains]

    def explained_by(self, finding: Finding | str) -> list[Finding]:
        """The problems that explain ``finding``."""
        kind = finding if isinstance(finding, str) else finding.kind
        return [f for f in self.problems if kind in f.explains]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def kinds(self, min_severity: Severity = "info") -> set[str]:
        """The kinds found at ``min_severity`` or worse."""
        rank = severity_rank(min_severity)
        return {f.kind for f in self.findings if severity_rank(f.severity) >= rank}

    def get(self, kind: str) -> Finding | None:
        """The finding of ``kind`` or None."""
        return next((f for f in self.findings if f.kind == kind), None)

    def summary(self) -> str:
        """A readable summary: each root cause with its consequences under it, then the rest."""
        head = f"Diagnosis after {self.epochs} epoch(s), {self.steps} step(s): "
        if not self.findings:
            return head + "no findings, the run looks healthy."
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        head += ", ".join(f"{n} {s}" for s, n in reversed(counts.items()) if n)
        lines = [head]
        for f in self.causes:
            lines.append(f"Cause: [{f.severity.upper()}] {f.kind}: {f.evidence}")
            if f.remedy:
                lines.append(f"          remedy: {f.remedy}")
            if f.config_change:
                change = ", ".join(f"{k}={v!r}" for k, v in f.config_change.items())
                lines.append(f"          config: {change}")
            consequences = self.consequences_of(f)
            if consequences:
                lines.append("  Consequences: " + ", ".join(g.kind for g in consequences))
                for g in consequences:
                    lines.append(f"    [{g.severity.upper()}] {g.kind}: {g.evidence}")
                    lines.append(f"          because: {f.link_evidence.get(g.kind, '')}")
        for f in self.findings:
            if not f.is_problem:
                lines.append(f"[{f.severity.upper():7s}] {f.kind}: {f.evidence}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "causes": [f.kind for f in self.causes],
            "consequences": {f.kind: list(f.explains) for f in self.causes if f.explains},
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiagnosisReport:
        return cls(
            [Finding.from_dict(f) for f in data.get("findings", [])],
            epochs=int(data.get("epochs", 0)),
            steps=int(data.get("steps", 0)),
        )

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (``findings.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DiagnosisReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def merge_findings(*groups: Iterable[Finding]) -> list[Finding]:
    """One finding per kind: the most severe wins (the earlier one on ties)."""
    best: dict[str, Finding] = {}
    for group in groups:
        for f in group:
            kept = best.get(f.kind)
            if kept is None or severity_rank(f.severity) > severity_rank(kept.severity):
                best[f.kind] = f
    return list(best.values())


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and tuples appear in figures)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if hasattr(value, "item") and callable(value.item):
        return _jsonable(value.item())
    return value
