"""Every builder's model traces and exports to ONNX with a free batch axis (deploy needs it)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tunelab.models import build_model

# nn.LSTM/GRU's own forward checks tensor values while tracing; the trace is still exact.
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

CASES = [
    ("mlp", {"batch_norm": True, "depth": 1, "width": 8}, (6,)),
    ("cnn", {"channels": [4, 8], "hidden": 8}, (1, 8, 8)),
    ("resnet", {"widths": [4, 8], "blocks_per_stage": 1}, (3, 8, 8)),
    ("lstm", {"hidden": 8, "bidirectional": True}, (5, 3)),
    ("gru", {"hidden": 8, "pooling": "mean"}, (5, 3)),
    ("transformer", {"d_model": 8, "heads": 2, "layers": 1, "ff": 16}, (6,)),
]


@pytest.mark.parametrize(("builder", "params", "shape"), CASES)
def test_traced_and_onnx_models_match_eager_at_another_batch_size(tmp_path, builder, params, shape):
    ort = pytest.importorskip("onnxruntime")
    model = build_model(builder, params, input_shape=shape, output_size=3).eval()
    example, x = torch.randn(2, *shape), torch.randn(5, *shape)
    with torch.no_grad():
        expected = model(x)
        traced = torch.jit.trace(model, example, check_trace=False)
        assert torch.allclose(traced(x), expected, atol=1e-5)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)
