"""The layout of a run directory: the one place that knows every file and folder name of a run.

Every stage asks :class:`RunDir` (a run, ``runs/<name>/``) or :class:`TrainingDir` (one training:
``tunelab train``'s run, a trial ``trials/<n>/``, a CV fold, a doctor round) where a file lives,
instead of joining names itself. ``RunDir`` also owns the artefacts of the lowest stage, the
configs (``config.yaml``, ``best/config.yaml``); the artefacts of higher stages are read and
written by their owning stage's typed class at the path given here (``CompressionTable``,
``DiagnosisReport``, ``StudyResult``, ``load_model``). See docs/design.md, "Seams between stages".

This module imports only :mod:`tunelab.config` and :mod:`tunelab.errors`, so every stage may
import it without importing the stages above it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .config import ExperimentConfig, load_config
from .errors import FatalError

__all__ = ["DoctorDir", "RunDir", "TrainingDir", "Versioned"]

_TRIAL_NAME = re.compile(r"\d+")

# Entries a directory's previous contents never include: its kept versions, and tune's
# standby helpers (``workers/``: live processes of the command that is starting).
_NOT_PREVIOUS = ("versions", "workers")


class Versioned:
    """A directory whose previous contents are never lost: the versioning rule of every stage.

    A command that would replace what the directory holds (``tunelab train`` on a run name
    that has a run, ``tunelab doctor`` again, ``tunelab compress`` again) first checks
    everything it can, and only then either

    * trains into :meth:`staging` (a sibling ``.<name>.staging/``) and, on success,
      :meth:`switch_to` it: the previous contents become ``versions/<N>/`` of the new
      directory (earlier versions kept beside it); on failure the staging folder is
      :meth:`discard`-ed or kept as a version (:meth:`keep_as_version`) and the directory
      itself is untouched; or
    * :meth:`archive_previous`: moves the previous contents into ``versions/<N>/`` in place,
      then writes anew (the doctor, compress and a tune run replacing a training run).

    ``N`` counts from 1, as Lightning's ``version_N``; a version is a complete directory of the
    same kind (``RunDir("runs/x/versions/2")`` serves, compresses and reports as any run).
    ``--resume`` and a continued study write in place and never version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def versions_dir(self) -> Path:
        """``versions/``: the previous contents, one numbered folder each."""
        return self.path / "versions"

    def versions(self) -> dict[int, Path]:
        """The kept versions, by number (empty when there are none)."""
        if not self.versions_dir.is_dir():
            return {}
        found = {
            int(p.name): p
            for p in self.versions_dir.iterdir()
            if p.is_dir() and _TRIAL_NAME.fullmatch(p.name)
        }
        return dict(sorted(found.items()))

    def _next_version(self) -> Path:
        return self.versions_dir / str(max(self.versions(), default=0) + 1)

    def holds_previous(self) -> bool:
        """True when the directory holds something a new run would replace."""
        return self.path.is_dir() and any(p.name not in _NOT_PREVIOUS for p in self.path.iterdir())

    def staging(self) -> Path:
        """A fresh, empty ``.<name>.staging/`` beside the directory, to write a new run into.

        A leftover staging folder (a killed command's unfinished run) is removed first.
        """
        path = self.path.with_name(f".{self.path.name}.staging")
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def switch_to(self, staging: Path) -> Path | None:
        """Make ``staging`` the directory; returns where the previous contents were kept."""
        if not self.holds_previous():
            if self.path.exists():  # only versions/ (or nothing): carry them over
                if self.versions_dir.is_dir():
                    os.replace(self.versions_dir, staging / "versions")
                shutil.rmtree(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, self.path)
            return None
        number = self._next_version().name
        if self.versions_dir.is_dir():
            os.replace(self.versions_dir, staging / "versions")
        else:
            (staging / "versions").mkdir()
        os.replace(self.path, staging / "versions" / number)
        os.replace(staging, self.path)
        return self.versions_dir / number

    def keep_as_version(self, staging: Path) -> Path:
        """Keep ``staging`` as the next version; the directory's current contents stay."""
        target = self._next_version()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        return target

    @staticmethod
    def discard(staging: Path) -> None:
        """Remove a staging folder (a run that failed before it produced anything)."""
        shutil.rmtree(staging, ignore_errors=True)

    def archive_previous(self) -> Path | None:
        """Move the previous contents into ``versions/<N>/`` in place; returns that folder."""
        if not self.holds_previous():
            return None
        target = self._next_version()
        target.mkdir(parents=True)
        for entry in sorted(self.path.iterdir()):
            if entry.name not in _NOT_PREVIOUS:
                os.replace(entry, target / entry.name)
        return target


def kept_line(previous: Path | None, what: str = "previous run") -> str:
    """The one line that says what happened to the previous contents (empty when none)."""
    return f"{what} kept as {previous}" if previous is not None else ""


class TrainingDir(Versioned):
    """One training directory: what :func:`tunelab.train.run_training` writes into ``path``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    def holds_run(self) -> bool:
        """True when a training (or tuning) run is here: what a new run must not overwrite.

        Only what a run writes counts (``config.yaml``, ``result.json``, ``best/``...): a
        ``doctor/`` or ``data_profile.json`` alone (the doctor or a profile before the first
        training) is not a run, and a new run is written beside it.
        """
        return any(p.exists() for p in self._run_files())

    def _run_files(self) -> tuple[Path, ...]:
        return (self.config, self.result, self.best_model, self.checkpoint, self.metrics)

    @property
    def config(self) -> Path:
        """``config.yaml``: the config that produced this directory."""
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: one JSON object per epoch."""
        return self.path / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.pt``: the last state, for resuming."""
        return self.path / "checkpoint.pt"

    @property
    def best_model(self) -> Path:
        """``best/``: ``model.safetensors``, ``model.json``, ``preprocessing.json``."""
        return self.path / "best"

    @property
    def result(self) -> Path:
        """``result.json``: status, reason, best epoch, best and test metrics."""
        return self.path / "result.json"

    @property
    def findings(self) -> Path:
        """``findings.json``: the doctor's report (``DiagnosisReport.save``)."""
        return self.path / "findings.json"

    @property
    def best_fold(self) -> Path:
        """``best_fold.json``: under cross-validation, which fold's ``best/`` was kept."""
        return self.path / "best_fold.json"

    def fold(self, k: int) -> TrainingDir:
        """``fold_<k>/``: one cross-validation fold of a trial."""
        return TrainingDir(self.path / f"fold_{k}")

    def fold_of(self, name: str) -> TrainingDir:
        """The fold folder ``name`` (as ``best_fold.json`` records it) inside this directory."""
        return TrainingDir(self.path / Path(name).name)


class DoctorDir(Versioned):
    """``doctor/``: what ``tunelab doctor [--fix]`` writes (one training directory per round)."""

    @property
    def fix_rounds(self) -> Path:
        """``fix_rounds.json``: findings and val metric per round."""
        return self.path / "fix_rounds.json"

    @property
    def repaired_config(self) -> Path:
        """``config.yaml``: the (repaired) config of the last round."""
        return self.path / "config.yaml"

    def round(self, k: int) -> TrainingDir:
        """``round_<k>/``: the training directory of repair round ``k``."""
        return TrainingDir(self.path / f"round_{k}")

    def confirmation(self, which: str) -> TrainingDir:
        """``confirm_<which>/``: the full training of the config given (``start``) or of the
        repaired one (``returned``) that confirms the repair."""
        if which not in ("start", "returned"):
            raise ValueError(f"which must be 'start' or 'returned', not {which!r}")
        return TrainingDir(self.path / f"confirm_{which}")


class RunDir(TrainingDir):
    """A run directory ``runs/<name>/`` (see docs/contracts.md, "Directories").

    A plain ``tunelab train`` run is a training directory itself, so ``RunDir`` has every
    :class:`TrainingDir` attribute (``metrics``, ``result``, ``findings``...) for its root.
    """

    @classmethod
    def for_config(cls, cfg: ExperimentConfig) -> RunDir:
        """``runs/<cfg.name>`` (under ``cfg.run_root``)."""
        return cls(cfg.run_dir)

    # ---- layout ---------------------------------------------------------------------------

    @property
    def best_config(self) -> Path:
        """``best/config.yaml``: the best trial's fully resolved config (no search spaces)."""
        return self.best_model / "config.yaml"

    def _run_files(self) -> tuple[Path, ...]:
        return (*super()._run_files(), self.study_db, self.trials_dir, self.tune_summary)

    @property
    def study_db(self) -> Path:
        return self.path / "study.db"

    @property
    def tune_summary(self) -> Path:
        """``tune.json``: the study's summary (``tunelab.tune.StudyResult.save``)."""
        return self.path / "tune.json"

    @property
    def trials_dir(self) -> Path:
        return self.path / "trials"

    @property
    def workers_dir(self) -> Path:
        """``workers/``: the standby helper processes' files of a ``tunelab tune --workers``."""
        return self.path / "workers"

    def trial(self, n: int) -> TrainingDir:
        """``trials/<n>/``: the training directory of trial number ``n``."""
        return TrainingDir(self.trials_dir / str(n))

    def trials(self) -> dict[int, TrainingDir]:
        """The trial directories present, by trial number (empty without ``trials/``)."""
        if not self.trials_dir.is_dir():
            return {}
        found = {
            int(p.name): TrainingDir(p)
            for p in self.trials_dir.iterdir()
            if p.is_dir() and _TRIAL_NAME.fullmatch(p.name)
        }
        return dict(sorted(found.items()))

    @property
    def doctor(self) -> DoctorDir:
        return DoctorDir(self.path / "doctor")

    @property
    def doctor_dir(self) -> Path:
        return self.doctor.path

    @property
    def repaired_config(self) -> Path:
        """``doctor/config.yaml``: the config ``tunelab doctor --fix`` repaired."""
        return self.doctor.repaired_config

    @property
    def fix_rounds(self) -> Path:
        """``doctor/fix_rounds.json``."""
        return self.doctor.fix_rounds

    @property
    def compressed_dir(self) -> Path:
        """``compressed/``: one folder per variant plus ``table.json``/``table.csv``."""
        return self.path / "compressed"

    @property
    def compressed(self) -> Versioned:
        """``compressed/`` as a versioned directory (a new compress run keeps the previous)."""
        return Versioned(self.compressed_dir)

    @property
    def compressed_table(self) -> Path:
        return self.compressed_dir / "table.json"

    def compressed_variant(self, folder: str) -> Path:
        """``compressed/<folder>/``: one compressed variant."""
        return self.compressed_dir / folder

    @property
    def export_dir(self) -> Path:
        """``export/``: ``model.onnx``, ``model.pt``, ``model.json``, ``preprocessing.json``."""
        return self.path / "export"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def data_profile(self) -> Path:
        return self.path / "data_profile.json"

    @property
    def run_info(self) -> Path:
        """``run_info.json``: optional facts about the run (host, versions) the report shows."""
        return self.path / "run_info.json"

    def saved_model(self) -> Path:
        """The folder holding the run's saved model: ``best/``, or the root if it is one.

        A model folder (``best/``, ``compressed/<variant>``) may be given as the run itself.
        Raises :class:`FatalError` naming what is missing.
        """
        self.refuse_config_file()
        for candidate in (self.best_model, self.path):
            if (candidate / "model.json").is_file():
                return candidate
        if not self.path.exists():
            raise FatalError(f"error: no such run directory {self.path}")
        raise FatalError(
            f"error: {self.path} holds no saved model (expected "
            f"{self.best_model / 'model.json'}); train or tune first"
        )

    def refuse_config_file(self) -> None:
        """A config file given where a run directory belongs is one clear line (exit 2)."""
        if self.path.is_file() and self.path.suffix.lower() in (".yaml", ".yml"):
            raise FatalError(
                f"error: {self.path} is a config; pass a run directory (runs/<name>, "
                "written by `tunelab train` or `tunelab tune`)"
            )

    # ---- the configs ----------------------------------------------------------------------

    def read_config(self) -> ExperimentConfig:
        """``config.yaml`` as the user resolved it (a tuning run's search spaces kept)."""
        return _read(self.config, "the run's config")

    def write_config(self, cfg: ExperimentConfig) -> Path:
        return _write(self.config, cfg)

    def read_best_config(self) -> ExperimentConfig:
        """``best/config.yaml``, the best trial's plain config; FatalError if it is absent."""
        return _read(self.best_config, "the best trial's config (`tunelab tune` writes it)")

    def write_best_config(self, cfg: ExperimentConfig) -> Path:
        """Write ``best/config.yaml``; a config that still holds search spaces is refused."""
        left = sorted(cfg.search_spaces())
        if left:
            raise FatalError(
                f"error: the best trial's config must be plain; {', '.join(left)} "
                "still hold search spaces"
            )
        return _write(self.best_config, cfg)

    def resolved_config(self) -> ExperimentConfig:
        """The config the run's model was trained with, every field a plain value.

        ``best/config.yaml`` when present (a tuning run), else ``config.yaml`` (a plain training
        run, or a model folder whose parent holds it). A tuning ``config.yaml`` without
        ``best/config.yaml`` is a FatalError naming the missing file.
        """
        if self.best_config.is_file():
            return self.read_best_config()
        candidates = [self.config]
        if (self.path / "model.json").is_file():  # a model folder given as the run
            candidates.append(self.path.parent / "config.yaml")
        for path in candidates:
            if path.is_file():
                cfg = _read(path, "the run's config")
                break
        else:
            raise FatalError(
                f"error: no config.yaml in {self.path} (nor {self.best_config}); the run's "
                "config is needed to rebuild its data"
            )
        if cfg.search_spaces():
            raise FatalError(
                f"error: {self.best_config} is missing and {path} is a tuning config "
                f"({', '.join(sorted(cfg.search_spaces()))} are searched); finish "
                "`tunelab tune` first"
            )
        return cfg


def _read(path: Path, what: str) -> ExperimentConfig:
    if not path.is_file():
        raise FatalError(f"error: no {path}: {what} is missing")
    return load_config(path)


def _write(path: Path, cfg: ExperimentConfig) -> Path:
    """Write a config atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(cfg.to_yaml(), encoding="utf-8")
    os.replace(tmp, path)
    return path
