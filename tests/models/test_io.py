"""save_model / load_model: identical outputs after a round trip, JSON metadata, no pickles."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import tunelab.data
from tunelab.errors import FatalError
from tunelab.models import (
    ModelSpec,
    load_model,
    load_weights,
    read_metadata,
    save_model,
)

SPECS = [
    ("mlp", {"widths": [16, 8], "batch_norm": True, "dropout": 0.3}, (6,)),
    ("cnn", {"channels": [4, 8], "hidden": 16}, (1, 8, 8)),
    ("resnet", {"widths": [4, 8], "blocks_per_stage": 1}, (3, 8, 8)),
    ("lstm", {"hidden": 8, "bidirectional": True}, (5, 3)),
    ("gru", {"hidden": 8, "layers": 2}, (5, 3)),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1}, (6,)),
]


def _trained(spec: ModelSpec) -> torch.nn.Module:
    """A model whose weights and BatchNorm statistics have moved away from their init."""
    model = spec.build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(3):
        x = torch.randn(8, *spec.input_shape)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize(("builder", "params", "shape"), SPECS)
def test_round_trip_gives_identical_outputs(tmp_path, builder, params, shape):
    spec = ModelSpec(builder, params, input_shape=shape, output_size=3, classes=["a", "b", "c"])
    model = _trained(spec)
    save_model(tmp_path, model, spec, metrics={"val_accuracy": torch.tensor(0.75)})
    loaded = load_model(tmp_path)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert not loaded.model.training
    assert loaded.spec == spec
    assert loaded.metrics == {"val_accuracy": 0.75}


def test_model_json_holds_builder_params_and_parameter_count(tmp_path):
    spec = ModelSpec(
        "mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=2, init="xavier"
    )
    save_model(tmp_path, spec.build(), spec)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["builder"] == "mlp" and meta["params"] == {"depth": 1, "width": 8}
    assert meta["input_shape"] == [4] and meta["output_size"] == 2 and meta["init"] == "xavier"
    assert meta["parameters"] == 4 * 8 + 8 + 8 * 2 + 2
    assert meta["format"] == "tunelab.model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    assert ModelSpec.from_json((tmp_path / "model.json").read_text()) == spec


def test_preprocessing_object_is_saved_next_to_the_weights(tmp_path):
    class Scaler:
        def to_json(self):
            return json.dumps({"mean": [1.0, 2.0]})

    spec = ModelSpec("mlp", {"depth": 0}, input_shape=(2,), output_size=1, task="regression")
    save_model(tmp_path, spec.build(), spec, preprocessing=Scaler())
    assert json.loads((tmp_path / "preprocessing.json").read_text()) == {"mean": [1.0, 2.0]}
    assert load_model(tmp_path).preprocessing == {"mean": [1.0, 2.0]}


def test_data_stage_preprocessing_comes_back_as_its_class(tmp_path):
    cls = getattr(tunelab.data, "ImagePreprocessing", None)
    if cls is None:
        pytest.skip("the data stage does not export ImagePreprocessing yet")
    images = torch.rand(10, 1, 8, 8).numpy() * 16
    pre = cls(shape=[1, 8, 8], pixel_scale=16.0).fit(images)
    spec = ModelSpec("cnn", {"channels": [4]}, input_shape=(1, 8, 8), output_size=10)
    save_model(tmp_path, spec.build(), spec, preprocessing=pre)
    loaded = load_model(tmp_path).preprocessing
    assert isinstance(loaded, cls)
    assert (loaded.transform(images) == pre.transform(images)).all()


def test_saving_again_replaces_files_and_leaves_no_temporaries(tmp_path):
    spec = ModelSpec("mlp", {"depth": 0}, input_shape=(3,), output_size=2)
    first, second = spec.build(), spec.build()
    save_model(tmp_path, first, spec, preprocessing={"a": 1})
    save_model(tmp_path, second, spec)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.json", "model.safetensors"]
    loaded = load_model(tmp_path).model
    assert torch.equal(loaded.head.weight, second.head.weight)


def test_compiled_or_wrapped_models_save_their_plain_weights(tmp_path):
    spec = ModelSpec("mlp", {"depth": 1, "width": 4}, input_shape=(3,), output_size=2)
    model = spec.build()
    wrapper = torch.nn.Module()
    wrapper._orig_mod = model  # what torch.compile's OptimizedModule holds
    save_model(tmp_path, wrapper, spec)
    x = torch.randn(2, 3)
    assert torch.equal(load_model(tmp_path).model(x), model.eval()(x))


def _saved(tmp_path):
    spec = ModelSpec("mlp", {"depth": 1, "width": 4}, input_shape=(3,), output_size=2)
    model = spec.build()
    save_model(tmp_path, model, spec)
    return model


def test_a_torch_save_archive_offered_as_weights_is_refused(tmp_path):
    model = _saved(tmp_path)
    torch.save(model.state_dict(), tmp_path / "model.safetensors")
    with pytest.raises(FatalError, match=r"torch.save zip archive.*never unpickles"):
        load_model(tmp_path)


def test_a_raw_pickle_offered_as_weights_is_refused(tmp_path):
    model = _saved(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(model.state_dict()))
    with pytest.raises(FatalError, match="a Python pickle"):
        load_model(tmp_path)


def test_safetensors_whose_header_length_starts_like_a_pickle_load(tmp_path):
    # A 640-byte header: the file starts 80 02, a pickle's first two bytes. Found in a real
    # tuned run: the best trial's weights were refused as a pickle.
    import json
    import struct

    from safetensors.torch import load_file

    from tunelab.models._io import refuse_pickle

    data = torch.arange(6, dtype=torch.float32)
    header = json.dumps({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}})
    header = header.ljust(640).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data.numpy().tobytes())
    assert path.read_bytes()[:2] == b"\x80\x02"
    refuse_pickle(path)  # no error
    assert torch.equal(load_file(str(path))["w"], data)


def test_a_pickle_path_or_a_folder_of_pickles_is_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(FatalError, match=r"refusing to load .*model.pt"):
        load_model(tmp_path / "model.pt")
    with pytest.raises(FatalError, match=r"no model.json.*found model.pt: pickles are never"):
        load_model(tmp_path)
    with pytest.raises(FatalError, match="never unpickles"):
        load_weights(model, tmp_path / "model.pt")


def test_loading_never_calls_the_unpickler(tmp_path, monkeypatch):
    model = _saved(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    x = torch.randn(2, 3)
    assert torch.equal(load_model(tmp_path).model(x), model.eval()(x))


def test_weights_for_another_architecture_fail_with_one_line(tmp_path):
    _saved(tmp_path)
    meta = read_metadata(tmp_path)
    meta["params"] = {"depth": 1, "width": 5}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(FatalError, match="do not fit the architecture") as info:
        load_model(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_directory_and_bad_json_are_one_line_errors(tmp_path):
    with pytest.raises(FatalError, match="no such directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(FatalError, match="not valid JSON"):
        load_model(tmp_path)


def test_tied_weights_are_stored_once_and_restored(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = torch.nn.Linear(4, 4, bias=False)
            self.head = torch.nn.Linear(4, 4, bias=False)
            self.head.weight = self.encode.weight

        def forward(self, x):
            return self.head(self.encode(x))

    model = Tied()
    spec = ModelSpec("mlp", {}, input_shape=(4,), output_size=4)
    save_model(tmp_path, model, spec)
    fresh = Tied()
    load_weights(fresh, tmp_path / "model.safetensors")
    assert torch.equal(fresh.head.weight, model.head.weight)
    assert fresh.head.weight is fresh.encode.weight


def test_custom_model_round_trip_reimports_its_factory(tmp_path, monkeypatch):
    (tmp_path / "zoo_nets.py").write_text(
        "import torch.nn as nn\n"
        "def two_layer(input_shape, output_size, hidden=5):\n"
        "    net = nn.Sequential(nn.Linear(input_shape[0], hidden), nn.Tanh())\n"
        "    net.add_module('head', nn.Linear(hidden, output_size))\n"
        "    return net\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec(
        "custom", {"factory": "zoo_nets:two_layer", "hidden": 6}, input_shape=(3,), output_size=2
    )
    model = spec.build()
    save_model(tmp_path / "saved", model, spec)
    x = torch.randn(4, 3)
    assert torch.equal(load_model(tmp_path / "saved").model(x), model.eval()(x))
