"""The HTTP contract: /predict, /health, /metadata, /docs, and a 4xx for every kind of bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tunelab.cli import main
from tunelab.compress import load_variant, predict_batched
from tunelab.deploy import create_app, load_served_model
from tunelab.errors import FatalError

from .conftest import table_row


@pytest.fixture(scope="module")
def table_app(table_run):
    return create_app(load_served_model(table_run, "best"), max_rows=1024)


@pytest.fixture(scope="module")
def client(table_app):
    return TestClient(table_app)


@pytest.fixture(scope="module")
def image_client(image_run):
    return TestClient(create_app(load_served_model(image_run, "best")))


def test_health_docs_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "best"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["example"]["rows"][0]) == {"f1", "f2", "f3", "f4", "f5", "color", "count"}


def test_metadata_describes_input_classes_and_metrics(client):
    meta = client.get("/metadata").json()
    assert meta["classes"] == ["no", "yes"] and meta["task"] == "classification"
    features = {f["name"]: f for f in meta["input"]["features"]}
    assert features["color"]["categories"] == ["blue", "green", "red"]
    assert features["count"]["dtype"] == "int"
    assert meta["model"]["builder"] == "mlp" and "test_accuracy" in meta["metrics"]
    assert meta["max_rows"] == 1024


def test_predict_applies_the_saved_preprocessing_and_matches_the_model(client, table_run):
    rows = [table_row(), table_row(color="blue", f1=-2.0), table_row(f2=None)]
    reply = client.post("/predict", json={"rows": rows})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["rows"] == 3 and data["classes"] == ["no", "yes"]
    assert all(p in ("no", "yes") for p in data["predictions"])
    probs = np.array(data["probabilities"])
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    loaded = load_variant(table_run / "best")
    logits = predict_batched(loaded.predictor, loaded.preprocessing.transform(rows))
    assert data["class_indices"] == logits.argmax(1).tolist()
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(probs, expected, atol=1e-5)


def test_1024_rows_go_through_one_forward_pass(table_app, client):
    engine = table_app.state.engine
    before = engine.forward_calls
    reply = client.post("/predict", json={"rows": [table_row(f1=i / 100) for i in range(1024)]})
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 1024
    assert engine.forward_calls == before + 1


def test_more_rows_than_the_limit_is_413(client):
    reply = client.post("/predict", json={"rows": [table_row()] * 1025})
    assert reply.status_code == 413 and "at most 1024" in reply.json()["detail"]


def test_an_oversized_body_is_413_before_it_is_parsed(table_run):
    small = TestClient(create_app(load_served_model(table_run, "best"), max_body_bytes=500))
    reply = small.post("/predict", json={"rows": [table_row()] * 20})
    assert reply.status_code == 413
    assert "500" in reply.json()["detail"]


def test_an_unseen_category_is_accepted_with_a_warning(client):
    reply = client.post("/predict", json={"rows": [table_row(color="purple")]})
    assert reply.status_code == 200
    assert "'purple' not seen in training" in reply.json()["warnings"][0]


BAD = [
    (b"", "empty body"),
    (b"   ", "empty body"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "bare list"),
    (b'"rows"', "JSON object"),
    (b'{"rows": 5}', '"rows" must be a list'),
    (b'{"rows": []}', "is empty"),
    (b'{"row": []}', "unknown field 'row'"),
    (b"{}", 'missing field "rows"'),
    (b'{"rows": [[1, 2, 3]]}', "expected an object of named features"),
    (b'{"rows": [{"f1": NaN}]}', "NaN is not a valid JSON number"),
    (b'{"rows": [{"f1": Infinity}]}', "Infinity is not a valid JSON number"),
    (json.dumps({"rows": [table_row(f4="X")]}).replace('"X"', "1e400").encode(), "not a finite"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_malformed_bodies_are_422_with_a_message(client, body, message):
    reply = client.post("/predict", content=body)
    assert reply.status_code == 422
    assert message in reply.json()["detail"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (table_row(colour="red"), "unknown feature 'colour'"),
        ({k: v for k, v in table_row().items() if k != "f3"}, "missing feature 'f3'"),
        (table_row(f1="1.5x"), "feature 'f1': expected a number, got the string '1.5x'"),
        (table_row(f1="nan"), "feature 'f1': expected a number, got the string 'nan'"),
        (table_row(f1="1e999"), "feature 'f1': '1e999' is not a finite number"),
        (table_row(f1=True), "feature 'f1': expected a number, got a boolean"),
        (table_row(f5=10**400), "not a finite number"),
        (table_row(f5=[1.0]), "expected a number, got a list"),
        (table_row(color={"x": 1}), "expected a category (text), got an object"),
        (table_row(color=True), "expected a category (text), got a boolean"),
    ],
)
def test_bad_feature_values_are_422_naming_the_row_and_feature(client, row, message):
    reply = client.post("/predict", json={"rows": [table_row(), row]})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert message in detail and "row 1" in detail


def test_images_as_nested_lists_in_any_usual_layout(image_client, image_run):
    meta = image_client.get("/metadata").json()
    assert meta["input"]["kind"] == "image"
    rng = np.random.default_rng(0)
    image = rng.integers(0, 17, (8, 8)).astype(float)
    rows = [image[None].tolist(), image.tolist(), image[:, :, None].tolist()]
    reply = image_client.post("/predict", json={"rows": rows})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert len(set(data["predictions"])) == 1  # one image, three layouts, one answer
    loaded = load_variant(image_run / "best")
    x = loaded.preprocessing.transform(image[None, None])
    assert data["class_indices"][0] == int(loaded.predictor(x).argmax())


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (np.zeros((7, 8)).tolist(), "expected shape 1x8x8 or 8x8x1 or 8x8, got 7x8"),
        ([[0.0] * 8] * 7 + [[0.0] * 7], "ragged"),
        ("/etc/passwd", "expected a nested list of numbers, got the string"),
        ([["a"] * 8] * 8, "expected numbers, found the string 'a'"),
        ([[None] * 8] * 8, "expected numbers, found null"),
        (5, "expected a nested list"),
    ],
)
def test_bad_images_are_422(image_client, row, message):
    reply = image_client.post("/predict", json={"rows": [row]})
    assert reply.status_code == 422 and message in reply.json()["detail"]


def test_onnx_and_int8_models_serve_the_same_answers(table_run, tmp_path):
    from tunelab.deploy import export_run

    export_run(table_run, ["onnx", "int8"], out_dir=table_run / "export")
    rows = [table_row(f1=x) for x in np.linspace(-2, 2, 40)]
    answers = {}
    for model in ("best", "onnx", "int8"):
        c = TestClient(create_app(load_served_model(table_run, model)))
        assert c.get("/metadata").json()["model"]["format"] == (
            "torch" if model == "best" else "onnx"
        )
        answers[model] = c.post("/predict", json={"rows": rows}).json()["predictions"]
    assert answers["onnx"] == answers["best"]
    assert np.mean(np.array(answers["int8"]) == np.array(answers["best"])) >= 0.95


def test_a_pickle_offered_as_the_model_is_refused(table_run, tmp_path, capsys):
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps({"state": [1, 2, 3]}))
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(evil.read_bytes())
    for path in (evil, disguised):
        with pytest.raises(FatalError, match=r"refusing to load .* it is a pickle"):
            load_served_model(table_run, str(path))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(table_run), "--model", str(evil)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing" in err


def test_a_model_directory_holding_a_pickle_as_weights_is_refused(table_run, tmp_path):
    import shutil

    folder = tmp_path / "copied"
    shutil.copytree(table_run / "best", folder)
    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(FatalError, match="pickle"):
        load_served_model(table_run, str(folder))


def test_serving_onnx_before_exporting_says_which_command_to_run(tmp_path, table_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(table_run / "best", run / "best")
    with pytest.raises(FatalError, match="--format onnx"):
        load_served_model(run, "onnx")
    with pytest.raises(FatalError, match="tunelab compress"):
        load_served_model(run, "int8")


def test_metadata_is_json_serialisable_for_every_model(client):
    json.dumps(client.get("/metadata").json())


def test_regression_models_return_values_and_compress_on_r2(regression_run):
    from tunelab.compress import compress_run

    client = TestClient(create_app(load_served_model(regression_run, "best")))
    meta = client.get("/metadata").json()
    assert meta["task"] == "regression" and meta["classes"] == []
    row = {f["name"]: 0.01 for f in meta["input"]["features"]}
    data = client.post("/predict", json={"rows": [row, row]}).json()
    assert set(data) == {"predictions", "rows"} and len(data["predictions"]) == 2
    assert all(isinstance(v, float) for v in data["predictions"])
    loaded = load_variant(regression_run / "best")
    expected = loaded.predictor(loaded.preprocessing.transform([row])).reshape(-1)[0]
    assert data["predictions"][0] == pytest.approx(float(expected), rel=1e-5)
    table = compress_run(regression_run, methods=["quantize"]).table
    assert [r.metric for r in table.rows] == ["r2"] * 3


def test_rows_replayed_from_the_csv_with_extra_columns(client):
    row = table_row(label="yes", id=7)
    refused = client.post("/predict", json={"rows": [row]})
    assert refused.status_code == 422
    assert "?extra=ignore" in refused.json()["detail"]
    reply = client.post("/predict?extra=ignore", json={"rows": [row]})
    assert reply.status_code == 200, reply.text
    assert "ignored columns the model does not use: id, label" in reply.json()["warnings"]
    assert client.post("/predict?extra=maybe", json={"rows": [row]}).status_code == 422


def test_a_numeric_string_is_the_number_it_spells(client):
    as_numbers = client.post("/predict", json={"rows": [table_row(f1=1.5, count=3)]}).json()
    as_text = client.post("/predict", json={"rows": [table_row(f1=" 1.5", count="3")]}).json()
    assert as_text["probabilities"] == as_numbers["probabilities"]


def test_misspelled_and_missing_features_say_what_to_send(client):
    misspelled = client.post("/predict", json={"rows": [{**table_row(), "colr": "red"}]})
    assert "did you mean 'color'?" in misspelled.json()["detail"]
    without_f2 = {k: v for k, v in table_row().items() if k != "f2"}
    detail = client.post("/predict", json={"rows": [without_f2]}).json()["detail"]
    assert "missing feature 'f2'" in detail and "send null to impute it" in detail
    assert client.post("/predict", json={"rows": [table_row(f2=None)]}).status_code == 200


def test_the_openapi_body_is_bounded_and_its_example_looks_like_the_data(client, table_run):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/predict"]["post"]
    rows = post["requestBody"]["content"]["application/json"]["schema"]["properties"]["rows"]
    assert rows["minItems"] == 1 and rows["maxItems"] == 1024
    assert {"413", "422"} <= set(post["responses"])
    example = post["requestBody"]["content"]["application/json"]["example"]["rows"][0]
    data = pd.read_csv(table_run.parent / "table.csv")
    assert example["color"] in set(data["color"])
    numeric = [example[c] for c in ("f1", "f2", "f3", "f4", "f5", "count")]
    assert any(v != 0.0 for v in numeric)
    for column in ("f1", "f2", "f3", "f4", "f5"):
        assert data[column].min() <= example[column] <= data[column].max()
    assert client.post("/predict", json={"rows": [example]}).status_code == 200
