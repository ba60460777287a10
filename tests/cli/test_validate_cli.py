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
