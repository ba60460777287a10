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


def _searched(tmp_path, tune: dict, epochs: int = 20) -> StudyOptions:
    """The options of a study over an optimiser, a five-way width and the learning rate."""
    cfg = tiny_config(
        tmp_path,
        model={"builder": "mlp", "params": {"depth": 1, "width": {"choice": [8, 16, 32, 64, 128]}}},
        train={
            "epochs": epochs,
            "optimizer": {"choice": ["adam", "sgd"]},
            "lr": {"low": 1e-3, "high": 1e-1, "log": True},
        },
        tune={"progress": "none", "heartbeat_interval": 0, **tune},
    )
    return StudyOptions.from_config(parse_config(cfg))


def test_default_startup_trials_see_each_choice_past_the_first_rung(tmp_path):
    # ASHA and a five-way choice: 4 random trials per value, within a fifth of the budget.
    assert _searched(tmp_path, {"trials": 10_000}).startup_trials == 20
    assert _searched(tmp_path, {"trials": 50}).startup_trials == 10  # a fifth of the budget
    assert _searched(tmp_path, {"trials": 20}).startup_trials == 4  # as before: trials / 5
    # A larger reduction factor lets fewer trials past the first rung: r per value.
    assert _searched(tmp_path, {"trials": 10_000, "reduction_factor": 5}).startup_trials == 25
    # Without successive halving every trial is seen whole: two per value (Optuna's 10 here).
    assert _searched(tmp_path, {"trials": 10_000, "pruner": "none"}).startup_trials == 10
    # Written in the config: kept as written; the median pruner's start-up stays at most 5.
    written = _searched(tmp_path, {"trials": 10_000, "startup_trials": 7, "pruner": "median"})
    assert written.startup_trials == 7 and written.pruner_startup_trials == 5


def test_the_first_rung_is_a_tenth_of_the_trial_unless_written(tmp_path):
    assert _searched(tmp_path, {}, epochs=20).warmup_epochs == 2
    assert _searched(tmp_path, {}, epochs=100).warmup_epochs == 10
    assert _searched(tmp_path, {}, epochs=12).warmup_epochs == 1
    assert _searched(tmp_path, {}, epochs=5).warmup_epochs == 1
    assert _searched(tmp_path, {"warmup_epochs": 3}, epochs=20).warmup_epochs == 3
    assert _searched(tmp_path, {"warmup_epochs": 0}, epochs=20).warmup_epochs == 0
