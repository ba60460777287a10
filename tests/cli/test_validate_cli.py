"""``tunelab validate`` checks the model builder's params too (they live outside config)."""

from __future__ import annotations

import pytest
import yaml

from tunelab.cli import main


def _write(tmp_path, params):
    path = tmp_path / "exp.yaml"
    config = {
        "name": "v",
        "data": {"source": "sklearn", "dataset": "iris"},
        "model": {"builder": "mlp", "params": params},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_misspelt_builder_param_is_one_line_naming_it_and_the_accepted_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(_write(tmp_path, {"widht": 32}))])
    assert exited.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "model.params.widht" in lines[0] and "did you mean 'width'" in lines[0]


def test_a_bad_value_and_a_search_space_over_a_real_param(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(_write(tmp_path, {"activation": "swishy"}))])
    assert exited.value.code == 2
    assert "model.params.activation" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(_write(tmp_path, {"width": {"choice": [16, 32]}}))])
    assert exited.value.code == 0
    assert "1 tuned field(s): model.params.width" in capsys.readouterr().out


# ---- issue 16: validate checks what it can without training ---------------------------------


def _run(path, *extra):
    """``tunelab validate`` in-process: (exit code, stdout, stderr lines)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exited,
    ):
        main(["validate", str(path), *extra])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    return exited.value.code, out.getvalue(), lines


def _config(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_params_range_is_checked_at_both_ends_and_every_choice(tmp_path):
    code, _, err = _run(_write(tmp_path, {"dropout": {"low": 0.9, "high": 1.4}}))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("config error: model.params.dropout = {'low': 0.9, 'high': 1.4}")
    assert "range high 1.4" in err[0]
    code, _, err = _run(_write(tmp_path, {"width": {"choice": [16, -3]}}))
    assert code == 2 and "model.params.width" in err[0] and "choice -3" in err[0]
    code, _, err = _run(_write(tmp_path, {"dropout": {"low": 0.0, "high": 0.5}}))
    assert code == 0, err


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("train:\n  monitor: val_f1\n", "train.monitor", "did you mean 'val_f1_macro'"),
        (
            "data: {source: sklearn, dataset: diabetes}\ntrain:\n  monitor: val_accuracy\n",
            "train.monitor",
            "regression task",
        ),
        ("train:\n  early_stopping: {monitor: val_acc}\n", "train.early_stopping.monitor", "val_"),
        ("tune:\n  metric: accuracy\n", "tune.metric", "did you mean 'val_accuracy'"),
        (
            "tune:\n  objectives: [{metric: val_loss, direction: minimize}, "
            "{metric: latency, direction: minimize}]\n",
            "tune.objectives.1.metric",
            "latency_ms",
        ),
    ],
)
def test_monitored_metrics_must_exist_for_the_task(tmp_path, text, field, fragment):
    code, _, err = _run(_config(tmp_path, text))
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"config error: {field} = ") and fragment in err[0]


def test_a_missing_data_path_names_the_folders_it_was_sought_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _config(tmp_path, "data:\n  source: csv\n  path: data/t.csv\n", "configs/exp.yaml")
    code, _, err = _run(path)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("config error: data.path = 'data/t.csv' — no such file or directory")
    assert f"{tmp_path / 'configs'} (the config file's folder)" in err[0]
    assert f"{tmp_path} (the current directory)" in err[0]


def test_the_label_and_feature_columns_are_read_from_the_header(tmp_path):
    (tmp_path / "t.csv").write_text("age,income,class\n1,2,x\n3,4,y\n")
    base = "data:\n  source: csv\n  path: t.csv\n"
    code, _, err = _run(_config(tmp_path, base + "  label: clas\n"))
    assert code == 2 and "data.label = 'clas'" in err[0] and "did you mean 'class'" in err[0]
    code, _, err = _run(_config(tmp_path, base + "  features: [age, incme]\n"))
    assert code == 2 and "data.features.1 = 'incme'" in err[0]
    (tmp_path / "u.csv").write_text("a,b,outcome\n1,2,x\n")
    code, _, err = _run(_config(tmp_path, "data:\n  source: csv\n  path: u.csv\n"))
    assert (
        code == 2
        and err[0].startswith("config error: data.label — not set")
        and "outcome" in err[0]
    )
    code, _, err = _run(_config(tmp_path, base))
    assert code == 0, err


def test_only_the_sections_that_apply_are_shown_and_it_ends_with_ok(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,x\n2,y\n")
    path = _config(tmp_path, "data:\n  source: csv\n  path: t.csv\n")
    code, out, _ = _run(path)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[-1].startswith(f"OK: {path} is valid")
    assert sum(line.startswith("OK") for line in lines) == 1
    resolved = yaml.safe_load("\n".join(lines[:-1]))
    assert "synthetic" not in resolved["data"] and "dataset" not in resolved["data"]
    assert "tune" not in resolved and "--all" in out
    code, out, _ = _run(path, "--all")
    resolved = yaml.safe_load("\n".join(out.strip().splitlines()[:-1]))
    assert "synthetic" in resolved["data"] and "tune" in resolved


def test_a_block_the_user_wrote_is_shown_even_when_it_does_not_apply(tmp_path):
    path = _config(tmp_path, "data:\n  synthetic: {n_samples: 50}\n")
    code, out, _ = _run(path)
    assert code == 0 and "n_samples: 50" in out


def test_the_examples_that_ship_their_data_validate(monkeypatch):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    for path in sorted(examples.glob("*.yaml")):
        code, out, err = _run(path)
        if "cifar" in path.name:  # the CIFAR-10 files are not shipped: the data path is named
            assert code == 2 and "data.path" in err[0], err
        else:
            assert code == 0, (path, err)
            assert out.strip().splitlines()[-1].startswith("OK: ")


def test_a_directory_where_a_csv_file_belongs_is_one_line(tmp_path):
    (tmp_path / "folder").mkdir()
    code, _, err = _run(_config(tmp_path, "data:\n  source: csv\n  path: folder\n"))
    assert code == 2 and len(err) == 1 and "data.path" in err[0] and "is a directory" in err[0]
