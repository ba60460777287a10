"""Fuzzing /predict: hundreds of malformed requests, none may give a 5xx or break the server."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.deploy import InputError, InputSchema, create_app, load_served_model

from .conftest import table_row

FEATURES = ["f1", "f2", "f3", "f4", "f5", "color", "count"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated_rows(draw):
    """Valid-looking rows with one thing wrong: a key dropped/added/renamed or a bad value."""
    row = table_row()
    action = draw(st.sampled_from(["drop", "add", "value", "rename"]))
    key = draw(st.sampled_from(FEATURES))
    if action == "drop":
        del row[key]
    elif action == "add":
        row[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    elif action == "rename":
        row[key + draw(st.text(min_size=1, max_size=3))] = row.pop(key)
    else:
        row[key] = draw(json_values)
    return {"rows": [table_row(), row]}


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_rows().map(lambda v: json.dumps(v).encode()),
    st.lists(json_values, max_size=5).map(lambda rows: json.dumps({"rows": rows}).encode()),
    st.sampled_from(
        [b"NaN", b'{"rows": [{"f1": -Infinity}]}', b'{"rows": [[[[[[]]]]]]}', b"[" * 5000]
    ),
)


@pytest.fixture(scope="module")
def client(table_run):
    return TestClient(create_app(load_served_model(table_run, "best"), max_body_bytes=20_000))


REFUSED: list[int] = []


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_no_malformed_request_gives_a_5xx(client, body):
    reply = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert reply.status_code < 500, (body[:200], reply.text)
    if reply.status_code != 200:
        assert reply.status_code in (413, 422)
        assert reply.json()["detail"]
        REFUSED.append(reply.status_code)


def test_the_server_still_answers_after_the_fuzzing(client):
    if REFUSED:  # the fuzz test ran first (file order): it must have sent >= 200 bad requests
        assert len(REFUSED) >= 200
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"rows": [table_row()]}).status_code == 200


def test_null_is_refused_for_a_feature_without_a_fill_value():
    schema = InputSchema("table", fields=[{"name": "a", "dtype": "float"}], fillable=set())
    with pytest.raises(InputError, match="null is not allowed"):
        schema.parse([{"a": None}])
    filled = InputSchema("table", fields=[{"name": "a", "dtype": "float"}], fillable={"a"})
    assert filled.parse([{"a": None}]) == ({"a": [None]}, [])


nested = st.recursive(
    st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-5, 20) | scalars,
    lambda inner: st.lists(inner, min_size=0, max_size=9),
    max_leaves=80,
)


@pytest.fixture(scope="module")
def image_client(image_run):
    return TestClient(create_app(load_served_model(image_run, "best")))


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(nested, min_size=1, max_size=3))
def test_no_malformed_image_request_gives_a_5xx(image_client, rows):
    reply = image_client.post("/predict", json={"rows": rows})
    assert reply.status_code in (200, 413, 422), (rows, reply.text)
