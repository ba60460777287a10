"""``tunelab demo --quick``: the whole walk on real bundled data, every stage for real.

The digits run (images, CNN) is made once per session and shared; the tabular path
(breast_cancer, MLP) runs once on its own. Both use the ``--quick`` budget the issue sets for
tests (<= 60 s on this machine).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import optuna
import pytest
import torch

from tunelab.cli import main
from tunelab.report import build_report

ALL_PLOTS = {
    "class_balance",
    "optimization_history",
    "intermediate_values",
    "parallel_coordinates",
    "param_importances",
    "timeline",
    "learning_curves",
    "confusion_matrix",
    "grad_norms",
    "fix_rounds",
    "compression_tradeoff",
}


def _demo(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["demo", *args])
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("demo")
    code, out, err = _demo("--quick", "--run-root", str(root))
    assert code == 0, out[-3000:] + err[-3000:]
    return root / "demo-digits", out


def test_demo_leaves_every_artifact_of_the_run_directory(digits_demo):
    run, _ = digits_demo
    for name in (
        "data_profile.json",
        "doctor/fix_rounds.json",
        "doctor/config.yaml",
        "study.db",
        "tune.json",
        "best/model.safetensors",
        "result.json",
        "compressed/table.json",
        "export/model.onnx",
        "export/model.json",
        "report.html",
        "run_info.json",
    ):
        assert (run / name).is_file(), name


def test_demo_ends_with_report_path_and_serve_command(digits_demo):
    run, out = digits_demo
    assert "report.html" in out
    assert f"tunelab serve {run} --model onnx" in out.replace("\n", "")


def test_demo_report_has_every_section_populated(digits_demo):
    run, _ = digits_demo
    report = build_report(run)
    assert report.missing == {}
    assert set(report.plots) >= ALL_PLOTS
    # The only acceptable gap on a demo run is none at all.
    assert report.gaps == {}, report.gaps


def test_demo_tunes_with_the_default_sampler_and_pruner(digits_demo):
    run, _ = digits_demo
    study = optuna.load_study(study_name="demo-digits", storage=f"sqlite:///{run / 'study.db'}")
    assert len(study.trials) >= 6
    summary = json.loads((run / "tune.json").read_text())
    assert summary["pruner"] == "asha"
    assert summary["sampler"] in {"tpe", "random", "gp", "qmc", "grid", "cmaes"}


def test_demo_evaluates_the_best_trial_weights_without_retraining(digits_demo):
    run, _ = digits_demo
    best = json.loads((run / "tune.json").read_text())["best"]["number"]
    trial = json.loads((run / "trials" / str(best) / "result.json").read_text())
    demo = json.loads((run / "result.json").read_text())
    assert demo["test_metrics"]["test_accuracy"] == pytest.approx(
        trial["test_metrics"]["test_accuracy"], abs=1e-9
    )
    assert demo["test_metrics"]["test_accuracy"] > 0.8  # digits CNN after tuning
    test_rows = json.loads((run / "data_profile.json").read_text())["rows"]["test"]
    assert sum(map(sum, demo["confusion_matrix"])) == test_rows


def test_demo_doctor_repaired_the_poor_config(digits_demo):
    run, _ = digits_demo
    rounds = json.loads((run / "doctor" / "fix_rounds.json").read_text())
    first, last = rounds["rounds"][0], rounds["rounds"][-1]
    assert any(f["severity"] in ("warning", "error") for f in first["findings"])
    assert len(rounds["rounds"]) >= 2
    assert last["value"] > first["value"]


def test_demo_export_passed_its_parity_check(digits_demo):
    run, _ = digits_demo
    meta = json.loads((run / "export" / "model.json").read_text())
    assert meta["exports"]["onnx"]["parity"]["passed"] is True


def test_demo_records_step_timings_and_hardware(digits_demo):
    run, _ = digits_demo
    info = json.loads((run / "run_info.json").read_text())
    names = [s["name"] for s in info["steps"]]
    assert len(names) == 7 and names[0] == "Data profile" and names[-1] == "Report"
    assert info["hardware"]["cpu_cores"] >= 1
    assert 0 < info["wall_time_s"] <= 120  # the quick budget, with slack for a busy machine


def test_demo_on_breast_cancer_runs_the_tabular_mlp_path(tmp_path: Path):
    code, out, err = _demo("--quick", "--dataset", "breast_cancer", "--run-root", str(tmp_path))
    assert code == 0, out[-3000:] + err[-3000:]
    run = tmp_path / "demo-breast_cancer"
    assert json.loads((run / "best" / "model.json").read_text())["builder"] == "mlp"
    report = build_report(run)
    assert report.missing == {}
    assert {"learning_curves", "confusion_matrix", "compression_tradeoff"} <= set(report.plots)


def test_demo_with_an_unknown_dataset_is_one_line_exit_2(tmp_path: Path):
    code, _, err = _demo("--dataset", "mnist", "--run-root", str(tmp_path))
    assert code == 2
    assert err.strip().count("\n") == 0 and "digits, breast_cancer" in err


def test_demo_never_deletes_a_directory_it_did_not_make(tmp_path: Path):
    mine = tmp_path / "demo-digits"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = _demo("--quick", "--run-root", str(tmp_path))
    assert code == 2 and "not made by `tunelab demo`" in err
    assert (mine / "notes.txt").read_text() == "keep me"
