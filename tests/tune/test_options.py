"""StudyOptions (resolved once from the config, sent to workers) and the executor seam."""

from __future__ import annotations

import pytest

from tunelab.config import parse_config
from tunelab.errors import ConfigError
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


def test_local_is_the_only_executor_so_far():
    assert make_executor("local").name == "local"
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ConfigError, match=r"tune\.executor = 'ray'"):
        make_executor("ray")
