"""``tunelab tune``: progress lines, the summary tables, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from tunelab.cli import main

from .conftest import WORKER_LRS, tiny_config, worker_study_sections


def _write(tmp_path, **sections):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, name="cli", **sections)))
    return path


def test_tune_prints_progress_best_params_importances_and_top_trials(tmp_path, capsys):
    train = {
        "epochs": 2,
        "batch_size": 32,
        "tensorboard": False,
        "deterministic": False,
        "lr": {"low": 1e-3, "high": 0.1},
    }
    path = _write(tmp_path, train=train)
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), "--trials", "3", "--progress", "plain", "--pruner", "none"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    # Not a terminal: one plain line per finished trial.
    assert out.count("complete  value=") == 3
    assert "best trial #" in out and "train.lr" in out
    assert "parameter importance" in out
    assert "top 5 trials" in out
    assert "study: sqlite:///" in out


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--sampler", "bayes", "config error: tune.sampler = 'bayes' — expected one of auto, grid"),
        ("--pruner", "asha2", "config error: tune.pruner = 'asha2' — expected one of none"),
        ("--timeout", "soon", "config error: tune.timeout"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, capsys, flag, value, expected):
    path = _write(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), flag, value])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected)
    assert "\n" not in err


def test_grid_over_a_continuous_range_is_one_line_error(tmp_path, capsys):
    path = _write(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), "--sampler", "grid"])
    assert done.value.code == 2
    assert "train.lr is a continuous range" in capsys.readouterr().err


def test_live_table_shows_running_and_finished_trials():
    import optuna
    from rich.console import Console

    from tunelab.tune._progress import LiveTable

    study = optuna.create_study()
    study.tell(study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1)}), 0.5)
    running = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1)})
    running.report(0.7, 1)
    console = Console(record=True, width=120)
    console.print(LiveTable(study, title="live").render())
    text = console.export_text()
    assert "complete" in text and "running" in text
    assert "lr=" in text and "0.5" in text


def test_workers_started_early_by_the_cli_run_trials(tmp_path, capsys):
    import json

    import psutil

    path = _write(tmp_path, **worker_study_sections())
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), "--workers", "2"])
    assert done.value.code == 0
    folder = tmp_path / "runs" / "cli" / "workers"
    # The helper was started in standby before the study existed and got its spec by name.
    [spec] = folder.glob("standby-*-1.json")
    assert json.loads(spec.with_suffix(".result.json").read_text())["reason"]
    import optuna

    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{tmp_path}/runs/cli/study.db")
    assert sorted(t.params["train.lr"] for t in study.trials) == WORKER_LRS
    assert len({t.user_attrs["worker"]["pid"] for t in study.trials}) == 2
    assert not psutil.Process().children(recursive=True)


def test_a_failing_tune_stops_the_workers_it_started_early(tmp_path, capsys):
    import psutil

    path = _write(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), "--workers", "2", "--sampler", "bayes"])
    assert done.value.code == 2
    assert not psutil.Process().children(recursive=True), "the standby worker was stopped"


def test_helpers_of_a_run_that_fails_on_its_data_exit_without_a_traceback(
    tmp_path, monkeypatch, capfd
):
    from pathlib import Path

    import psutil

    example = Path(__file__).parents[2] / "examples" / "cifar_style_grid.yaml"
    monkeypatch.chdir(tmp_path)  # its data folder does not exist here
    with pytest.raises(SystemExit) as done:
        main(["tune", str(example), "--workers", "2", "--progress", "plain"])
    assert done.value.code != 0
    err = capfd.readouterr().err  # file-descriptor level: the helper's output too
    assert "no such file or directory" in err
    assert "Traceback" not in err
    assert not psutil.Process().children(recursive=True)


def _study(n_complete: int, ran: int | None, stop: str):
    from tunelab.tune._result import StudyResult, TrialSummary

    trials = [
        TrialSummary(i, "complete", [0.5 + i / 100], {"train.lr": 0.01 * (i + 1)}, 2, 1.0)
        for i in range(n_complete)
    ] + [TrialSummary(n_complete, "failed", None, {"train.lr": 0.5}, 0, 0.1, error="boom")]
    return StudyResult(
        study_name="s",
        storage="memory",
        directions=["maximize"],
        metrics=["val_accuracy"],
        sampler="tpe",
        pruner="none",
        trials=trials,
        best=trials[n_complete - 1],
        pareto=[trials[n_complete - 1]],
        importances={"train.lr": 1.0},
        stop_reason=stop,
        ran=ran,
    )


def _render(result) -> str:
    import io

    from tunelab._console import make_console
    from tunelab.tune._summary import print_summary

    stream = io.StringIO()
    print_summary(result, make_console(file=stream))
    return stream.getvalue()


def test_summary_counts_the_whole_study_and_this_command():
    # Issue 16 point 5: the budget's "8 trials done" is not what the study holds.
    out = _render(_study(10, 3, "trial budget of 8 reached"))
    assert "11 trials (10 complete, 1 failed), 3 run by this command" in out
    assert "trial budget of 8 reached" in out and "stopped: 8 trials done" not in out


def test_importances_from_few_trials_are_withheld_and_say_why():
    out = _render(_study(2, None, ""))
    assert "from 2 complete trials" in out
    assert "withheld: 2 complete trials; importances need at least 10" in out
    assert "█" not in out
    shown = _render(_study(10, None, ""))
    assert "from 10 complete trials" in shown and "█" in shown
