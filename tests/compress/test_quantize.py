"""int8 quantisation: the model really is int8, smaller, and still predicts the same classes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tunelab.compress import (
    CompressContext,
    OnnxPredictor,
    Quantize,
    TorchPredictor,
    Variant,
    check_order,
    export_onnx,
    graph_ops,
    onnx_is_quantized,
    quantize_onnx,
    resolve_mode,
)
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError
from tunelab.models import ModelSpec


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def test_dynamic_quantization_stores_int8_weights_and_uses_integer_matmuls(
    trained_mlp, digits, tmp_path
):
    model, _ = trained_mlp
    fp32 = export_onnx(model, digits.X_train[:2], tmp_path / "fp32.onnx")
    int8, mode = quantize_onnx(fp32, tmp_path / "int8.onnx", mode="dynamic")
    assert mode == "dynamic"
    assert onnx_is_quantized(int8) and not onnx_is_quantized(fp32)
    assert "MatMulInteger" in graph_ops(int8)
    weights = [
        i for i in onnx.load(str(int8)).graph.initializer if i.data_type == onnx.TensorProto.INT8
    ]
    assert sum(np.prod(w.dims) for w in weights) > 0.95 * sum(
        p.numel() for p in model.parameters() if p.ndim == 2
    )
    assert int8.stat().st_size < fp32.stat().st_size / 3.2
    X = digits.X_test.numpy()
    assert _agreement(OnnxPredictor(int8)(X), TorchPredictor(model)(X)) >= 0.98


def test_auto_mode_is_static_for_feed_forward_nets_and_dynamic_for_recurrent_and_attention(
    trained_mlp, trained_cnn, tmp_path
):
    mlp = export_onnx(trained_mlp[0], torch.zeros(2, 64), tmp_path / "mlp.onnx")
    cnn = export_onnx(trained_cnn[0], torch.zeros(2, 1, 8, 8), tmp_path / "cnn.onnx")
    assert resolve_mode("auto", mlp) == "static"
    assert resolve_mode("auto", cnn) == "static"
    assert resolve_mode("auto", mlp, has_calibration=False) == "dynamic"
    for builder, params, shape in [
        ("lstm", {"hidden": 16}, (8, 8)),
        ("transformer", {"d_model": 16, "heads": 2, "layers": 1}, (6,)),
    ]:
        net = ModelSpec(builder, params, input_shape=shape, output_size=3).build().eval()
        path = export_onnx(net, torch.zeros(2, *shape), tmp_path / f"{builder}.onnx")
        assert resolve_mode("auto", path) == "dynamic", builder


def test_an_lstm_is_quantised_dynamically_with_int8_lstm_kernels(tmp_path):
    net = ModelSpec("lstm", {"hidden": 32}, input_shape=(8, 8), output_size=4).build().eval()
    x = torch.randn(64, 8, 8)
    fp32 = export_onnx(net, x[:2], tmp_path / "lstm.onnx")
    int8, mode = quantize_onnx(fp32, tmp_path / "lstm8.onnx", calibration=x.numpy())
    assert mode == "dynamic" and "DynamicQuantizeLSTM" in graph_ops(int8)
    ref = TorchPredictor(net)(x.numpy())
    assert np.abs(OnnxPredictor(int8)(x.numpy()) - ref).max() < 0.05


def test_static_quantization_of_a_conv_net_is_calibrated_on_training_rows(
    trained_cnn, digit_images, tmp_path
):
    model, spec = trained_cnn
    variant = Variant("original", (), spec, model=model)
    ctx = CompressContext(
        bundle=digit_images, train_config=TrainConfig(batch_size=64), work_dir=tmp_path
    )
    out = Quantize(mode="auto", calibration_batches=4).apply(variant, ctx)
    info = out.info["quantize"]
    assert out.format == "onnx" and out.source is variant
    assert info["mode"] == "static" and info["calibration_rows"] == 256
    assert {"QLinearConv", "QGemm", "QuantizeLinear"} <= set(info["int8_ops"])
    assert "MaxPool" in graph_ops(out.onnx_path)  # pooling stays fp32 (faster in ORT)
    assert onnx_is_quantized(out.onnx_path)
    X = digit_images.X_test.numpy()
    assert _agreement(OnnxPredictor(out.onnx_path)(X), TorchPredictor(model)(X)) >= 0.97


def test_quantized_model_keeps_a_dynamic_batch_axis(trained_mlp, tmp_path):
    fp32 = export_onnx(trained_mlp[0], torch.zeros(2, 64), tmp_path / "fp32.onnx")
    int8, _ = quantize_onnx(fp32, tmp_path / "int8.onnx", mode="dynamic")
    predictor = OnnxPredictor(int8)
    for n in (1, 7, 300):
        assert predictor(np.zeros((n, 64), np.float32)).shape == (n, 10)


def test_static_mode_without_calibration_rows_is_a_clear_error(trained_mlp, tmp_path):
    fp32 = export_onnx(trained_mlp[0], torch.zeros(2, 64), tmp_path / "fp32.onnx")
    with pytest.raises(Exception, match="calibration"):
        quantize_onnx(fp32, tmp_path / "int8.onnx", mode="static")


@pytest.mark.parametrize("order", [["quantize", "prune"], ["quantize", "distill"]])
def test_methods_that_need_torch_weights_cannot_follow_quantize(order):
    with pytest.raises(ConfigError, match="put 'quantize' last"):
        check_order(order)
