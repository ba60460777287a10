"""A fitted estimator saves as a tunelab model directory that load_model and the server read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_diabetes, load_iris

from tunelab.models import load_model
from tunelab.sklearn import NeuralClassifier, NeuralRegressor


def _served_outputs(directory, rows) -> np.ndarray:
    loaded = load_model(directory)
    X = loaded.preprocessing.transform(rows)
    with torch.no_grad():
        return loaded.model(torch.as_tensor(X)).numpy()


def test_a_saved_classifier_predicts_like_the_estimator_from_named_rows(tmp_path):
    data = load_iris(as_frame=True)
    X, y = data.data, data.target
    est = NeuralClassifier(epochs=40, random_state=0).fit(X, y)
    folder = est.save(tmp_path / "iris")
    loaded = load_model(folder)
    assert loaded.preprocessing.feature_names == list(X.columns)
    assert loaded.spec.classes == ["0", "1", "2"]
    rows = X.iloc[:20].to_dict(orient="records")  # what a client posts to /predict
    outputs = _served_outputs(folder, rows)
    np.testing.assert_array_equal(outputs.argmax(1), est.predict(X.iloc[:20]))
    from fastapi.testclient import TestClient

    from tunelab.deploy import create_app
    from tunelab.deploy._loading import load_served_model

    client = TestClient(create_app(load_served_model(folder)))
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200
    assert answer.json()["class_indices"] == est.predict(X.iloc[:20]).tolist()


def test_a_saved_regressor_serves_predictions_in_target_units(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    est = NeuralRegressor(epochs=30, lr=0.01, random_state=0).fit(X, y)
    folder = est.save(tmp_path / "diabetes")
    assert load_model(folder).spec.target_scale is not None
    rows = X[:15].tolist()  # unnamed columns: x0, x1, ...
    outputs = _served_outputs(
        folder, [dict(zip(load_model(folder).preprocessing.columns, r, strict=True)) for r in rows]
    )
    np.testing.assert_allclose(outputs.ravel(), est.predict(X[:15]), rtol=1e-4, atol=1e-3)
    assert outputs.mean() > 50  # target units (diabetes is around 150), not standardised


def test_an_unfitted_estimator_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        NeuralClassifier().save(tmp_path / "nothing")


def test_feature_names_of_a_dataframe_name_the_served_columns(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    est = NeuralClassifier(epochs=5, random_state=0).fit(frame, (frame["a"] > 20).astype(int))
    schema = load_model(est.save(tmp_path / "m")).preprocessing.input_schema()
    assert [f.name for f in schema] == ["a", "b"]
