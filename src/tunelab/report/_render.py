"""Build the report from a run directory and write ``report.html``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import FatalError
from ..rundir import RunDir
from ._artifacts import RunArtifacts, load_run
from ._page import FigureRegistry, ReportSection, page
from ._section_data import data_section
from ._section_doctor import doctor_section
from ._sections_model import (
    best_model_section,
    compression_section,
    deploy_section,
)
from ._sections_run import dataset_name, search_section, started_at, summary_section

# Order of the sections in the page; each builder returns one ReportSection.
SECTION_BUILDERS = (
    summary_section,
    data_section,
    search_section,
    best_model_section,
    doctor_section,
    compression_section,
    deploy_section,
)


@dataclass
class Report:
    """A built report: its sections (with what is missing and why) and the page HTML."""

    run_dir: Path
    title: str
    sections: list[ReportSection] = field(default_factory=list)
    html: str = ""

    @property
    def missing(self) -> dict[str, str]:
        """Section key -> why the whole section could not be shown."""
        return {s.key: s.missing for s in self.sections if s.missing}

    @property
    def gaps(self) -> dict[str, list[str]]:
        """Section key -> parts of a present section that could not be shown, with why."""
        return {s.key: s.gaps for s in self.sections if s.gaps and not s.missing}

    @property
    def plots(self) -> list[str]:
        return [name for s in self.sections if not s.missing for name in s.plots]

    def write(self, output: str | Path | None = None) -> Path:
        """Write the page (default ``RUN_DIR/report.html``) atomically and return its path."""
        target = Path(output) if output is not None else RunDir(self.run_dir).report_html
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(self.html, encoding="utf-8")
        tmp.replace(target)  # a browser never opens a half-written report
        return target

    def section(self, key: str) -> ReportSection:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(
            f"no section {key!r}; sections are {', '.join(s.key for s in self.sections)}"
        )


def build_report(run_dir: str | Path) -> Report:
    """Read ``run_dir`` and build every section; never fails on a partial run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FatalError(f"error: no such run directory {str(path)!r}")
    art: RunArtifacts = load_run(path)
    reg = FigureRegistry()
    sections = [build(art, reg) for build in SECTION_BUILDERS]
    if all(s.missing for s in sections[1:]) and art.best is None and art.config is None:
        raise FatalError(
            f"error: {str(path)!r} is not a tunelab run directory (no config.yaml, metrics.jsonl, "
            "study.db, data_profile.json or export/ in it)"
        )
    name = (art.config or {}).get("name") or path.resolve().name
    title = f"tunelab report: {name}"
    data = dataset_name(art)
    made = f"started {started_at(art)} · made {datetime.now():%Y-%m-%d %H:%M}"
    subtitle = f"{data} · {made}" if data else made
    plotly_js = ""
    if reg.count:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    report = Report(run_dir=path, title=title, sections=sections)
    report.html = page(title, subtitle, sections, plotly_js)
    return report


def render_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the self-contained report (default ``RUN_DIR/report.html``) and return its path.

    Example:
        >>> from tunelab.report import render_report
        >>> path = render_report("runs/digits-cnn")          # doctest: +SKIP
        >>> path.name
        'report.html'
    """
    return build_report(run_dir).write(output)
