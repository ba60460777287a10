"""The report stage: one self-contained ``report.html`` per run directory.

``render_report(run_dir)`` reads what the other stages left in the run directory (data profile,
Optuna study, trial metrics, doctor findings, compression table, export) and writes an HTML file
that opens from disk with no server and no network. Parts a partial run lacks are listed with the
reason instead of failing.

``run_demo()`` (``tunelab demo``) walks the whole workflow on bundled data and ends with that
report: data profile, doctor and ``--fix``, tuning, test evaluation, compression, ONNX export.
"""

from ._artifacts import RunArtifacts, TrainingArtifacts, load_run
from ._demo import Demo, DemoResult, DemoStep, run_demo
from ._page import ReportSection
from ._render import Report, build_report, render_report

__all__ = [
    "Demo",
    "DemoResult",
    "DemoStep",
    "Report",
    "ReportSection",
    "RunArtifacts",
    "TrainingArtifacts",
    "build_report",
    "load_run",
    "render_report",
    "run_demo",
]
