"""The report renders every section of a complete run and explains the gaps of partial ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tunelab.errors import FatalError
from tunelab.report import build_report, render_report

SECTIONS = ["summary", "data", "search", "best-model", "doctor", "compression", "deploy"]


def test_full_run_writes_one_self_contained_file(handmade_run: Path):
    path = render_report(handmade_run)
    assert path == handmade_run / "report.html"
    html = path.read_text()
    # plotly.js is inlined exactly once and nothing is fetched from the network.
    assert html.count("<script>") >= 1
    assert html.count("Plotly.newPlot") >= 8
    assert len(re.findall(r"plotly\.js v\d", html)) == 1
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=\"?https?:", html)
    for key in SECTIONS:
        assert f'id="{key}"' in html


def test_full_run_has_every_section_and_plot(handmade_run: Path):
    report = build_report(handmade_run)
    assert report.missing == {}
    assert set(report.plots) >= {
        "optimization_history",
        "intermediate_values",
        "parallel_coordinates",
        "param_importances",
        "timeline",
        "learning_curves",
        "confusion_matrix",
        "grad_norms",
        "class_balance",
        "compression_tradeoff",
        "fix_rounds",
    }


def test_trials_table_gives_state_and_reason_of_each_trial(handmade_run: Path):
    html = build_report(handmade_run).section("search").to_html()
    assert html.count('<span class="state-COMPLETE">') == 6
    assert '<span class="state-PRUNED">' in html and '<span class="state-FAIL">' in html
    assert "pruned by ASHA at epoch 2" in html
    assert "diverging_loss: loss rose 40x" in html
    assert "best trial" in html


def test_best_model_shows_test_metrics_confusion_matrix_and_report(handmade_run: Path):
    section = build_report(handmade_run).section("best-model")
    html = section.to_html()
    assert section.gaps == []
    assert "<th>test split</th>" in html
    assert "<td>accuracy</td>" in html
    assert "macro avg" in html  # sklearn's classification report, as a table
    assert "From TensorBoard events." in html  # gradient norms from histogram sum_squares


def test_doctor_section_shows_evidence_remedy_and_fix_rounds(handmade_run: Path):
    html = build_report(handmade_run).section("doctor").to_html()
    assert "val_loss rose 3 epochs in a row" in html
    assert "raise weight decay or dropout" in html
    assert "diverging_loss (error)" in html  # round 0 of --fix
    assert "0.93 val_accuracy" in html  # round 1, after the fix
    assert "train.lr=0.05" in html  # the change applied before round 1
    assert "Repaired: stopped because no warning or error left" in html
    assert "#5" in html  # the sick trial of the search


def test_summary_names_data_task_best_metric_and_test_metric(handmade_run: Path):
    html = build_report(handmade_run).section("summary").to_html()
    assert "digits (sklearn bundled)" in html
    assert "classification" in html
    assert "val_accuracy" in html
    assert "test_accuracy" in html


def test_deploy_section_has_serve_command_and_export_files(handmade_run: Path):
    html = build_report(handmade_run).section("deploy").to_html()
    assert f"tunelab serve {handmade_run} --model onnx" in html
    assert "export/model.onnx" in html
    assert "max_abs_diff" in html


def test_training_only_run_says_which_sections_are_missing(training_only_run: Path):
    report = build_report(training_only_run)
    assert set(report.missing) == {"data", "search", "doctor", "compression"}
    # The saved best model can be served even before any export.
    assert "--model best" in report.section("deploy").to_html()
    assert any("tunelab export" in gap for gap in report.section("deploy").gaps)
    assert "tunelab train" in report.missing["search"]
    assert "tunelab compress" in report.missing["compression"]
    assert {"learning_curves", "confusion_matrix", "grad_norms"} <= set(report.plots)
    html = render_report(training_only_run).read_text()
    assert 'id="missing-sections"' in html


def test_running_study_is_reported_as_in_progress(running_study_run: Path):
    report = build_report(running_study_run)
    html = report.section("search").to_html()
    assert "still running: 1 trial(s)" in html
    assert '<span class="state-RUNNING">' in html
    assert "optimization_history" in report.plots
    assert any("metrics.jsonl" in gap for gap in report.section("best-model").gaps)


def test_torn_metrics_line_is_skipped(training_only_run: Path):
    with (training_only_run / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 3, "train_lo')  # a writer mid-append
    report = build_report(training_only_run)
    assert "learning_curves" in report.plots


def test_directory_that_is_not_a_run_is_one_line_error(tmp_path: Path):
    with pytest.raises(FatalError, match="not a tunelab run directory"):
        build_report(tmp_path)
    with pytest.raises(FatalError, match="no such run directory"):
        build_report(tmp_path / "absent")


def test_cross_validated_best_trial_shows_the_fold_best_fold_json_names(
    handmade_run: Path, tmp_path: Path
):
    run = Path(shutil.copytree(handmade_run, tmp_path / "cv-run"))
    trial = next(p for p in (run / "trials").iterdir() if (p / "metrics.jsonl").is_file())
    # The tuner's CV layout: each fold trains in fold_<k>/, the kept fold's best/ is copied up
    # and best_fold.json records which fold that was.
    for k in (0, 1):
        shutil.copytree(trial, trial / f"fold_{k}", ignore=shutil.ignore_patterns("fold_*"))
    (trial / "best_fold.json").write_text(json.dumps({"fold": "fold_1", "values": [0.9]}))
    (trial / "metrics.jsonl").unlink()
    html = build_report(run).section("best-model").to_html()
    assert f"trials/{trial.name}/fold_1" in html
    assert "learning_curves" in build_report(run).plots


def test_regression_run_has_curves_and_no_classification_parts(tmp_path: Path):
    from tunelab.config import parse_config
    from tunelab.train import run_training

    cfg = parse_config(
        {
            "name": "reg",
            "data": {"source": "sklearn", "dataset": "diabetes"},
            "model": {"builder": "mlp", "params": {"width": 16, "depth": 1}},
            "train": {"epochs": 2, "progress": "none", "tensorboard": False},
        }
    )
    run_training(cfg, run_dir=tmp_path / "reg")
    report = build_report(tmp_path / "reg")
    best = report.section("best-model")
    assert "learning_curves" in report.plots
    assert "confusion_matrix" not in report.plots
    assert not any("confusion" in g or "classification" in g for g in best.gaps)
    assert "<td>r2</td>" in best.to_html()


def test_importances_from_few_trials_carry_their_caveat(handmade_run: Path):
    html = build_report(handmade_run).section("search").to_html()
    assert "These importances rest on 6 complete trial(s)" in html
