"""StudyOptions (resolved once from the config, sent to workers) and the executor seam."""

from __future__ import annotations

from tunelab.config import parse_config
from tunelab.tune import LocalExecutor, StudyOptions
from tunelab.tune._executor import make_executor

from .conftest import tiny_config


def test_options_resolve_the_storage_once_and_survive_a_worker_spec(tmp_path):
    cfg = parse_config(tiny_config(tmp_path, name="opts"))
    options = StudyOptions.from_config(cfg)
    assert options.storage == f"sqlite:///{(tmp_path / 'runs' / 'opts' / 'study.db').resolve()}"
    assert options.metrics == ("val_loss",) and options.directions == ("minimize",)
    assert options.lock_path == cfg.run_dir / ".start.lock"
    assert StudyOptions.from_dict(options.to_dict()) == options


def test_the_tune_section_chooses_the_executor():
    assert isinstance(make_executor(), LocalExecutor)
    ray_cfg = parse_config({"tune": {"backend": "ray", "max_concurrent": 3}}).tune
    executor = make_executor(ray_cfg)
    assert executor.name == "ray" and executor.max_concurrent == 3
    assert executor.resources == {"cpu": 1.0, "gpu": 0.0}
