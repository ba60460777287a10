"""``tunelab demo``: the whole walk from data to a served model, on bundled data, in minutes.

Data profile -> doctor on a deliberately poor config -> ``--fix`` -> tuning (default sampler and
pruner, two workers) -> the best model on the test split -> compression table -> ONNX export
with its parity check -> report. Every step calls the stage's public API; nothing here trains,
tunes or measures on its own. Each step prints a short rich summary, and the timings go to
``RUN_DIR/run_info.json`` (the report's "Steps" table).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import FatalError
from ..rundir import RunDir
from ._demo_config import DATASETS, FULL, QUICK, DemoBudget, poor_config, search_config


@dataclass
class DemoStep:
    """One step of the walk: what it was, how long it took, what came out."""

    name: str
    seconds: float
    summary: str


@dataclass
class DemoResult:
    """Where the demo left everything."""

    run_dir: Path
    report: Path
    serve_command: str
    steps: list[DemoStep] = field(default_factory=list)
    wall_time_s: float = 0.0
    test_metrics: dict[str, float] = field(default_factory=dict)


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def hardware() -> dict[str, Any]:
    """What the run ran on, recorded so the report can say it."""
    import psutil
    import torch

    info: dict[str, Any] = {
        "cpu_cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class Demo:
    """Runs the steps in order; ``run()`` returns a :class:`DemoResult`.

    Args:
        dataset: ``digits`` (images, CNN) or ``breast_cancer`` (table, MLP).
        quick: the small budget the tests use (about a minute).
        run_root: where ``demo-<dataset>/`` is written.
        console: a rich console (default: a new one on stdout).
    """

    def __init__(
        self,
        dataset: str = "digits",
        *,
        quick: bool = False,
        run_root: str | Path = "runs",
        console: Any = None,
    ) -> None:
        self.dataset = dataset
        self.quick = quick
        self.run_root = run_root
        self.console = console

    # ---- the walk ------------------------------------------------------------------------

    def run(self) -> DemoResult:
        from .._console import make_console

        if self.dataset not in DATASETS:
            raise FatalError(
                f"error: --dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}"
            )
        self._console = self.console or make_console()
        self._budget: DemoBudget = QUICK if self.quick else FULL
        self._poor = poor_config(self.dataset, budget=self._budget, run_root=str(self.run_root))
        self.run_dir = Path(self.run_root) / self._poor["name"]
        self._steps: list[DemoStep] = []
        self._started = datetime.now()
        self._fresh_run_dir()
        start = time.perf_counter()
        steps: list[tuple[str, Callable[[], str]]] = [
            ("Data profile", self._data),
            ("Doctor on a poor config, then --fix", self._doctor),
            ("Hyperparameter search", self._tune),
            ("Best model on the test split", self._evaluate),
            ("Compression", self._compress),
            ("ONNX export with parity check", self._export),
            ("Report", self._report),
        ]
        for i, (name, step) in enumerate(steps, 1):
            self._console.rule(f"[bold]{i}/{len(steps)}  {name}")
            t0 = time.perf_counter()
            summary = step()
            seconds = time.perf_counter() - t0
            self._steps.append(DemoStep(name, round(seconds, 2), summary))
            self._console.print(f"[green]done[/] in {seconds:.1f} s — {summary}")
            self._write_info(time.perf_counter() - start)
        wall = time.perf_counter() - start
        self._write_info(wall)
        result = DemoResult(
            run_dir=self.run_dir,
            report=RunDir(self.run_dir).report_html,
            serve_command=self._serve_command(),
            steps=self._steps,
            wall_time_s=wall,
            test_metrics=self._test_metrics,
        )
        self._print_summary(result)
        return result

    def _fresh_run_dir(self) -> None:
        """Start over in a previous demo's directory; never delete anything else."""
        if self.run_dir.exists():
            if not RunDir(self.run_dir).run_info.is_file():
                raise FatalError(
                    f"error: {self.run_dir} exists and was not made by `tunelab demo`; "
                    "pass --run-root elsewhere or remove it"
                )
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        self._write_info(0.0)

    # ---- steps ---------------------------------------------------------------------------

    def _data(self) -> str:
        from ..config import parse_config
        from ..data import prepare_data

        cfg = parse_config(self._poor)
        self._bundle = prepare_data(cfg.data, seed=cfg.seed)
        profile = self._bundle.profile
        profile.save(RunDir(self.run_dir).data_profile)
        self._console.print(profile.render())
        rows = ", ".join(f"{k} {v}" for k, v in profile.rows.items())
        return f"{profile.name}: {rows} rows, input {tuple(self._bundle.input_shape)}"

    def _doctor(self) -> str:
        """``tunelab doctor --fix`` on the poor config: diagnose, repair, re-run, repeat."""
        from rich.table import Table

        from ..config import parse_config
        from ..diagnose._repair import diagnose_config  # what `tunelab doctor` itself runs

        budget = self._budget
        run = diagnose_config(
            parse_config(self._poor),
            epochs=budget.doctor_epochs,
            fix=True,
            rounds=budget.doctor_rounds,
            directory=RunDir(self.run_dir).doctor_dir,
        )
        table = Table(title="doctor --fix: before and after", title_justify="left")
        for name in ("round", "changes applied", "status", "warnings and errors", "val metric"):
            table.add_column(name)
        for r in run.rounds:
            problems = ", ".join(f"{f.kind} ({f.severity})" for f in r.problems) or "none"
            changes = ", ".join(f"{k}={v}" for k, v in r.changes.items()) or "-"
            value = "" if r.value is None else f"{r.value:.4f} {r.metric}"
            table.add_row(str(r.round), changes, r.status, problems, value)
        self._console.print(table)
        first = run.rounds[0]
        for finding in first.problems:
            self._console.print(
                f"[bold]{finding.kind}[/] ({finding.severity}): {finding.evidence}\n"
                f"  remedy: {finding.remedy}"
            )
        self._repaired = run.config.to_dict()
        before = ", ".join(sorted({f.kind for f in first.problems})) or "nothing"
        after = ", ".join(sorted({f.kind for f in run.final.problems})) or "healthy"
        return (
            f"found {before} ({first.metric} {_value(first.value)}); after "
            f"{len(run.rounds) - 1} fix round(s): {after} ({run.final.metric} "
            f"{_value(run.final.value)}); {run.stopped_because}"
        )

    def _tune(self) -> str:
        from ..config import parse_config
        from ..data import prepare_data
        from ..tune import run_study

        cfg = parse_config(search_config(self._repaired, budget=self._budget))
        spaces = cfg.search_spaces()
        self._console.print(f"searching {len(spaces)} fields: {', '.join(spaces)}")
        # The repair may have changed the data section (scaling): prepare the data the search
        # really uses, and profile that, since it is what the final model was trained on.
        self._bundle = prepare_data(cfg.data, seed=cfg.seed)
        self._bundle.profile.save(RunDir(self.run_dir).data_profile)
        result = run_study(cfg, bundle=self._bundle, progress="plain")
        self._study = result
        if result.best is None:
            raise FatalError("error: no trial of the demo's search completed")
        counts = ", ".join(f"{result.count(s)} {s}" for s in ("complete", "pruned", "failed"))
        return (
            f"{len(result.trials)} trials ({counts}), {result.sampler} sampler + "
            f"{result.pruner} pruner; best val_accuracy {result.best_value:.4f} "
            f"(trial #{result.best.number})"
        )

    def _evaluate(self) -> str:
        """The best trial's weights (copied to best/, never retrained) on the test split."""
        from ..models import load_model
        from ..train import Trainer

        run = RunDir(self.run_dir)
        loaded = load_model(run.best_model)
        cfg = run.read_best_config()  # the best trial's config, as `tune` wrote it
        evaluation = Trainer(cfg.train, seed=cfg.seed).evaluation(loaded.model, self._bundle)
        self._test_metrics = dict(evaluation.metrics)
        result = {
            "source": f"best trial #{self._study.best.number}: best/ weights, not retrained",
            "task": self._bundle.task,
            "classes": [str(c) for c in self._bundle.classes],
            "test_metrics": self._test_metrics,
            "per_class": evaluation.per_class,
            "confusion_matrix": evaluation.confusion_matrix,
            "classification_report": evaluation.classification_report,
        }
        RunDir(self.run_dir).result.write_text(json.dumps(result, indent=2), encoding="utf-8")
        self._console.print(evaluation.classification_report)
        shown = {k: v for k, v in self._test_metrics.items() if k != "test_loss"}
        return ", ".join(f"{k} {v:.4f}" for k, v in shown.items())

    def _compress(self) -> str:
        from ..compress import compress_run
        from ..compress._table import format_delta

        result = compress_run(self.run_dir, bundle=self._bundle, log=self._console.print)
        table = result.table
        self._console.print(table.format())
        if len(table.rows) < 2:
            return "only the original model was measured"
        last = table.rows[-1]  # the whole chain of methods applied
        delta = format_delta(last.metric, last.delta)  # as the CLI's table shows it
        return (
            f"{last.variant}: {last.size_ratio:.1f}x smaller, {last.speedup_b64:.1f}x faster "
            f"at batch 64 than torch fp32, test {last.metric} {delta}"
        )

    def _export(self) -> str:
        from ..deploy import export_run

        results = export_run(self.run_dir, ["onnx"], bundle=self._bundle, log=self._console.print)
        return "; ".join(f"{r.path.name}: parity ok, {r.parity.describe()}" for r in results)

    def _report(self) -> str:
        from ._render import build_report

        report = build_report(self.run_dir)
        path = report.write()
        missing = ", ".join(report.missing) or "none"
        return f"{path} ({len(report.plots)} plots; sections missing: {missing})"

    # ---- output --------------------------------------------------------------------------

    def _serve_command(self) -> str:
        return f"tunelab serve {shlex.quote(str(self.run_dir))} --model onnx"

    def _write_info(self, wall: float) -> None:
        info = {
            "made_by": "tunelab demo",
            "dataset": f"{self.dataset} (sklearn bundled)",
            "quick": self.quick,
            "started": self._started.strftime("%Y-%m-%d %H:%M"),
            "wall_time_s": round(wall, 2),
            "hardware": hardware(),
            "steps": [asdict(s) for s in self._steps],
        }
        RunDir(self.run_dir).run_info.write_text(json.dumps(info, indent=2), encoding="utf-8")

    def _print_summary(self, result: DemoResult) -> None:
        from rich.table import Table

        table = Table(title=f"tunelab demo ({self.dataset}) in {result.wall_time_s:.0f} s")
        table.add_column("step")
        table.add_column("s", justify="right")
        table.add_column("outcome")
        for step in result.steps:
            table.add_row(step.name, f"{step.seconds:.1f}", step.summary)
        self._console.rule()
        self._console.print(table)
        self._console.print(f"[bold]Report:[/] {result.report.resolve()}")
        self._console.print(f"[bold]Serve the model:[/] {result.serve_command}")


def run_demo(
    dataset: str = "digits",
    *,
    quick: bool = False,
    run_root: str | Path = "runs",
    console: Any = None,
) -> DemoResult:
    """Run the demo walk and return where it left everything (see :class:`Demo`)."""
    return Demo(dataset, quick=quick, run_root=run_root, console=console).run()
