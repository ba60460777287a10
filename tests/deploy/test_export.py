"""Export: TorchScript and ONNX files that reproduce the model, or no file and a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from tunelab.cli import main
from tunelab.compress import OnnxPredictor, load_variant, onnx_is_quantized
from tunelab.deploy import ExportError, check_parity, export_run, export_variant
from tunelab.models import ModelSpec


def test_onnx_and_torchscript_exports_pass_parity_and_carry_their_metadata(table_run, tmp_path):
    out = tmp_path / "export"
    results = export_run(table_run, ["onnx", "torchscript"], out_dir=out)
    assert [r.format for r in results] == ["onnx", "torchscript"]
    for r in results:
        assert r.parity.passed and r.parity.max_abs_diff <= 1e-4 and r.parity.rows > 50
    assert {p.name for p in out.iterdir()} == {
        "model.onnx",
        "model.pt",
        "model.json",
        "preprocessing.json",
    }
    meta = json.loads((out / "model.json").read_text())
    assert meta["builder"] == "mlp" and meta["classes"] == ["no", "yes"]
    assert set(meta["exports"]) == {"onnx", "torchscript"}
    # the export folder is usable alone: the ONNX model loads with its preprocessing
    loaded = load_variant(out)
    assert loaded.format == "onnx" and loaded.preprocessing.kind == "table"
    raw = [{"f1": 0.1, "f2": 0.2, "f3": 0.3, "f4": 0.4, "f5": 0.5, "color": "red", "count": 1}]
    assert loaded.predictor(loaded.preprocessing.transform(raw)).shape == (1, 2)


def test_onnx_export_has_a_dynamic_batch_axis(image_run, tmp_path):
    export_run(image_run, ["onnx"], out_dir=tmp_path)
    predictor = OnnxPredictor(tmp_path / "model.onnx")
    assert predictor(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 10)
    assert predictor(np.zeros((33, 1, 8, 8), np.float32)).shape == (33, 10)


def test_int8_export_is_int8_and_within_the_prediction_mismatch_limit(image_run, tmp_path):
    (result,) = export_run(image_run, ["int8"], out_dir=tmp_path)
    assert onnx_is_quantized(result.path)
    assert result.parity.kind == "int8" and result.parity.mismatch_rate <= 0.005


class _DataDependent(nn.Module):
    """Branches on the batch's values: a trace records one branch, so the export is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.sum()) > 0:
            return self.a(x)
        return self.b(x)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_deliberately_broken_export_fails_the_parity_check_and_is_not_kept(fmt, tmp_path):
    from tunelab.compress import LoadedVariant, TorchPredictor

    model = _DataDependent().eval()
    spec = ModelSpec("custom", {"factory": "x:y"}, input_shape=(4,), output_size=3)
    loaded = LoadedVariant(TorchPredictor(model), spec, model=model)
    # the first two rows (the trace example) sum > 0, many later rows sum < 0
    X = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    X[:2] = np.abs(X[:2])
    with pytest.raises(ExportError, match="failed its parity check"):
        export_variant(loaded, tmp_path, format=fmt, X_check=X)
    assert not (tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")).exists()


def test_tampered_weights_fail_the_int8_mismatch_limit(image_run, tmp_path, monkeypatch):
    import tunelab.deploy._export as export_module

    real = export_module.quantize_onnx

    def tampered(fp32, out, **kw):
        import onnx
        from onnx import numpy_helper

        path, mode = real(fp32, out, **kw)
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.int8 and arr.ndim >= 2:
                rng = np.random.default_rng(0)
                init.CopyFrom(
                    numpy_helper.from_array(
                        rng.permutation(arr.ravel()).reshape(arr.shape), init.name
                    )
                )
        onnx.save(model, str(path))
        return path, mode

    monkeypatch.setattr(export_module, "quantize_onnx", tampered)
    with pytest.raises(ExportError, match=r"predictions differ on .* \(limit 0.50%\)"):
        export_run(image_run, ["int8"], out_dir=tmp_path)


def test_parity_rules():
    ref = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    assert check_parity(ref, ref + 5e-5).passed
    assert not check_parity(ref, ref + 5e-4).passed  # limit is 1e-4 x the largest |output| (2)
    large_logits = ref * 50  # float32 rounding between runtimes grows with the output's size
    assert check_parity(large_logits, large_logits + 2.4e-4).passed
    assert not check_parity(large_logits, large_logits + 2e-2).passed
    flipped = ref.copy()
    flipped[2] = [0.0, 1.0]
    assert check_parity(ref, ref + 0.3, kind="int8").passed  # same predictions
    assert not check_parity(ref, flipped, kind="int8").passed  # 1 of 3 rows differ
    assert not check_parity(ref, np.full_like(ref, np.nan)).passed
    assert not check_parity(ref, ref[:2]).passed


def test_cli_export_writes_the_bundle(table_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(table_run), "--format", "onnx", "--int8"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "onnx:" in out and "int8:" in out and "parity ok" in out
    assert (table_run / "export" / "model.onnx").is_file()
    assert (table_run / "export" / "model.int8.onnx").is_file()


def test_cli_export_unknown_format_is_one_line(table_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(table_run), "--format", "tflite"])
    assert exit_info.value.code == 2
    assert "expected onnx or torchscript" in capsys.readouterr().err
