"""The comparison table: one row per variant, printed, and saved as JSON and CSV."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class CompressionRow:
    """Size, speed and quality of one variant, measured on the test split.

    Latencies are per call in milliseconds (p50/p95 over repeated calls, warm-up excluded) at
    batch 1 and batch 64, wall clock; ``*_cpu_ms`` is the median process CPU time per call (see
    ``_measure``: on a shared machine it is the steadier figure); ``throughput_rows_s`` is rows
    per second at batch 64 (wall clock); ``delta`` is
    ``test_metric`` minus the original's (accuracy: a fraction, so 0.01 is one point);
    ``size_ratio``, ``speedup_b64`` and ``speedup_b64_cpu`` are the original's file size,
    batch-64 p50 and batch-64 CPU time divided by this variant's.
    """

    variant: str
    methods: list[str]
    format: str
    params: int
    nonzero_params: int
    file_bytes: int
    b1_p50_ms: float
    b1_p95_ms: float
    b64_p50_ms: float
    b64_p95_ms: float
    throughput_rows_s: float
    metric: str
    test_metric: float
    b1_cpu_ms: float = 0.0
    b64_cpu_ms: float = 0.0
    delta: float = 0.0
    size_ratio: float = 1.0
    speedup_b64: float = 1.0
    speedup_b64_cpu: float = 1.0
    threads: int = 1
    path: str = ""
    notes: str = ""
    # The user's monitored metric (``train.monitor`` without ``val_``, e.g. f1_macro) on the
    # test split, when it is a score other than ``metric``; empty / None otherwise.
    monitor_metric: str = ""
    monitor_value: float | None = None
    monitor_delta: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionRow:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class CompressionTable:
    """The rows of one ``compress`` run plus how they were measured."""

    rows: list[CompressionRow] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self, variant: str) -> CompressionRow:
        for r in self.rows:
            if r.variant == variant:
                return r
        raise KeyError(f"no variant {variant!r}; have {', '.join(r.variant for r in self.rows)}")

    def finalize(self) -> CompressionTable:
        """Fill ``delta``, ``size_ratio`` and ``speedup_b64`` relative to the first row."""
        if not self.rows:
            return self
        base = self.rows[0]
        for r in self.rows:
            r.delta = r.test_metric - base.test_metric
            if r.monitor_value is not None and base.monitor_value is not None:
                r.monitor_delta = r.monitor_value - base.monitor_value
            r.size_ratio = base.file_bytes / r.file_bytes if r.file_bytes else 0.0
            r.speedup_b64 = base.b64_p50_ms / r.b64_p50_ms if r.b64_p50_ms else 0.0
            r.speedup_b64_cpu = base.b64_cpu_ms / r.b64_cpu_ms if r.b64_cpu_ms else 0.0
        return self

    def to_json(self) -> str:
        return (
            json.dumps({"meta": self.meta, "rows": [r.to_dict() for r in self.rows]}, indent=2)
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> CompressionTable:
        data = json.loads(text)
        return cls([CompressionRow.from_dict(r) for r in data["rows"]], data.get("meta", {}))

    @classmethod
    def load(cls, path: str | Path) -> CompressionTable:
        """Read ``table.json`` (``RunDir.compressed_table``) as :meth:`save` wrote it."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def save(self, directory: str | Path) -> tuple[Path, Path]:
        """Write ``table.json`` and ``table.csv`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = directory / "table.json", directory / "table.csv"
        json_path.write_text(self.to_json())
        names = [f.name for f in fields(CompressionRow)]
        with csv_path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=names)
            writer.writeheader()
            for r in self.rows:
                d = r.to_dict()
                d["methods"] = "+".join(r.methods)
                writer.writerow(d)
        return json_path, csv_path

    def format(self, width: int | None = None) -> str:
        """A fixed-width text table; one block of plain lines per variant where it would not fit.

        ``width`` is the terminal's width (None: not a terminal, the table keeps its natural
        width and a log or pipe gets it whole). A table wider than ``width`` would wrap in the
        middle of its rows, so each variant becomes a few short ``name: value`` lines instead.
        """
        if not self.rows:
            return "(no variants)"
        metric = self.rows[0].metric
        monitor = self.rows[0].monitor_metric
        header = [
            "variant",
            "format",
            "params",
            "size",
            "x smaller",
            "b1 p50/p95 ms",
            "b64 p50/p95 ms",
            "b64 cpu ms",
            "rows/s",
            "x faster (cpu)",
            f"test {metric}",
            "delta",
            *([f"test {monitor}", "delta "] if monitor else []),
        ]
        lines = []
        for r in self.rows:
            value, delta = format_metric(metric, r.test_metric), format_delta(metric, r.delta)
            extra = (
                [format_metric(monitor, r.monitor_value), format_delta(monitor, r.monitor_delta)]
                if monitor
                else []
            )
            params = f"{r.params:,}" + (
                f" ({r.nonzero_params:,} nz)" if r.nonzero_params < r.params * 0.99 else ""
            )
            lines.append(
                [
                    r.variant,
                    r.format,
                    params,
                    _size(r.file_bytes),
                    f"{r.size_ratio:.2f}",
                    f"{r.b1_p50_ms:.3f}/{r.b1_p95_ms:.3f}",
                    f"{r.b64_p50_ms:.3f}/{r.b64_p95_ms:.3f}",
                    f"{r.b64_cpu_ms:.3f}",
                    f"{r.throughput_rows_s:,.0f}",
                    f"{r.speedup_b64:.2f} ({r.speedup_b64_cpu:.2f})",
                    value,
                    delta,
                    *extra,
                ]
            )
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        threads = self.rows[0].threads
        footer = (
            f"(test split, {self.meta.get('test_rows', '?')} rows; latency per call with "
            f"{threads} thread(s), warm-up excluded; x = relative to {self.rows[0].variant})"
        )
        if width is not None and sum(widths) + 2 * (len(widths) - 1) > width:
            return "\n".join([*_blocks(header, lines), footer])
        out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line) for line in lines]
        out.append(footer)
        return "\n".join(out)


# Metrics shown in percent, their differences in points (0.0422 -> "+4.22 pt").
_PERCENT = ("accuracy", "f1_macro", "precision_macro", "recall_macro")


def format_metric(metric: str, value: float | None) -> str:
    """A test metric as the CLI and the report show it (accuracy 0.9533 -> "95.33%")."""
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}%" if metric in _PERCENT else f"{value:.4f}"


def format_delta(metric: str, delta: float | None) -> str:
    """A metric's difference to the original, the one formatter of CLI and report."""
    if delta is None:
        return "n/a"
    return f"{delta * 100:+.2f} pt" if metric in _PERCENT else f"{delta:+.4f}"


def _blocks(header: list[str], lines: list[list[str]]) -> list[str]:
    """The narrow form: per variant, its name then one short ``name value`` line per group."""
    out: list[str] = []
    groups = ((1, 2, 3, 4), (5, 6, 7), (8, 9), tuple(range(10, len(header))))
    for line in lines:
        out.append(f"{line[0]}:")
        for group in groups:
            out.append("  " + ", ".join(f"{header[i]} {line[i]}" for i in group))
    return out


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"
