"""Fatal vs trial errors: a systematic error stops the study at once, a trial's own goes on.

The model is a ``custom`` builder written by the test (``fatal_builders:net``) that raises on
one width: ``ConfigError``/``ImportError`` (fatal) or ``RuntimeError`` (the trial's own). With
``--workers 2`` it raises only in the helper process, and the parent's trials are slowed down,
so the helper joins while trials remain and its error must stop the parent too.
"""

from __future__ import annotations

import os

import optuna
import psutil
import pytest
import yaml

from tunelab.cli import main

from .conftest import tiny_config

BUILDER = """
import os
import time

import torch.nn as nn

from tunelab.errors import ConfigError


def net(*, input_shape, output_size, width, kind, where="any"):
    in_parent = str(os.getpid()) == os.environ["FATAL_TEST_PARENT"]
    if where == "helper" and in_parent:
        time.sleep(0.3)  # keep the parent's trials slow, so the helper gets the bad value
    elif width == 13:
        if kind == "config":
            raise ConfigError("config error: model.params.width = 13 — not a width this net takes")
        if kind == "import":
            import tunelab_missing_dependency  # noqa: F401
        raise RuntimeError(f"width {width} is a bad combination")
    return nn.Sequential(nn.Flatten(), nn.Linear(int(input_shape[0]), width), nn.ReLU(),
                         nn.Linear(width, output_size))
"""

EXPECTED = {
    "config": "config error: model.params.width = 13 — not a width this net takes",
    "import": "ModuleNotFoundError: No module named 'tunelab_missing_dependency'",
}


def _setup(tmp_path, monkeypatch, kind, *, trials, where="any", name="fatal"):
    (tmp_path / "fatal_builders.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)  # the helper processes import the builder too
    monkeypatch.setenv("FATAL_TEST_PARENT", str(os.getpid()))
    model = {
        "builder": "custom",
        "params": {
            "factory": "fatal_builders:net",
            "width": {"choice": [13, 8]},
            "kind": kind,
            "where": where,
        },
    }
    train = {"epochs": 1, "batch_size": 32, "tensorboard": False, "lr": 0.01}
    tune = {
        "sampler": "random",
        "pruner": "none",
        "trials": trials,
        "progress": "none",
        "heartbeat_interval": 0,
    }
    config = tiny_config(tmp_path, name=name, model=model, train=train, tune=tune)
    file = tmp_path / "exp.yaml"
    file.write_text(yaml.safe_dump(config, allow_unicode=True))
    return file


def _study(tmp_path, name="fatal"):
    url = f"sqlite:///{tmp_path}/runs/{name}/study.db"
    return optuna.load_study(study_name=name, storage=url)


def _tune(capfd, *args):
    with pytest.raises(SystemExit) as done:
        main(["tune", *args])
    return done.value.code, capfd.readouterr().err


@pytest.mark.parametrize("kind", ["config", "import"])
def test_a_fatal_error_in_a_trial_stops_the_study_at_once(tmp_path, monkeypatch, capfd, kind):
    path = _setup(tmp_path, monkeypatch, kind, trials=30)
    code, err = _tune(capfd, str(path))
    assert code == 2
    assert err.strip().endswith(EXPECTED[kind]) and "\n" not in err.strip()
    assert "Traceback" not in err
    trials = _study(tmp_path).trials
    last = trials[-1]
    assert last.params["model.params.width"] == 13, "the study stopped after the fatal trial"
    assert last.state.name == "FAIL" and last.user_attrs["error"].endswith(EXPECTED[kind])
    assert all(t.state.name == "COMPLETE" for t in trials[:-1])


def test_a_trial_that_raises_its_own_error_fails_and_the_study_goes_on(
    tmp_path, monkeypatch, capfd
):
    path = _setup(tmp_path, monkeypatch, "runtime", trials=8)
    code, _ = _tune(capfd, str(path))
    assert code == 0
    trials = _study(tmp_path).trials
    assert len(trials) == 8
    by_state = {t.state.name for t in trials if t.params["model.params.width"] == 13}
    assert by_state == {"FAIL"}
    assert all(t.state.name == "COMPLETE" for t in trials if t.params["model.params.width"] == 8)
    bad = next(t for t in trials if t.state.name == "FAIL")
    assert bad.user_attrs["error"] == "RuntimeError: width 13 is a bad combination"


@pytest.mark.parametrize("kind", ["config", "import"])
def test_a_helpers_fatal_error_stops_the_parent_and_exits_2(tmp_path, monkeypatch, capfd, kind):
    path = _setup(tmp_path, monkeypatch, kind, trials=300, where="helper")
    code, err = _tune(capfd, str(path), "--workers", "2")
    assert code == 2
    assert EXPECTED[kind] in err and "Traceback" not in err
    trials = _study(tmp_path).trials
    assert len(trials) < 300
    failed = [t for t in trials if t.state.name == "FAIL" and "error" in t.user_attrs]
    assert len(failed) == 1 and failed[0].user_attrs["error"].endswith(EXPECTED[kind])
    assert not psutil.Process().children(recursive=True)


def test_with_workers_a_trials_own_error_fails_only_that_trial(tmp_path, monkeypatch, capfd):
    path = _setup(tmp_path, monkeypatch, "runtime", trials=12)
    code, _ = _tune(capfd, str(path), "--workers", "2")
    assert code == 0
    trials = _study(tmp_path).trials
    assert len(trials) == 12
    assert {t.state.name for t in trials if t.params["model.params.width"] == 13} == {"FAIL"}
    assert not psutil.Process().children(recursive=True)


def test_a_helpers_fatal_error_stops_a_parent_whose_sigint_is_ignored(tmp_path, monkeypatch, capfd):
    """A process started with ``&`` by a shell without job control ignores SIGINT, so an
    interrupt by SIGINT never reaches its main thread: the watcher's must still stop it."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        path = _setup(tmp_path, monkeypatch, "config", trials=300, where="helper")
        code, err = _tune(capfd, str(path), "--workers", "2")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 2 and EXPECTED["config"] in err
    assert len(_study(tmp_path).trials) < 300
    assert not psutil.Process().children(recursive=True)
