"""Every field of the schema, fed wrong values derived from its own type: one line, exit code 2.

The fields come from walking the pydantic models (``ExperimentConfig`` and every section below
it), not from a hand-written list, so a field added later is fuzzed too. For each field the
wrong values follow from its annotation and constraints: the wrong type, a boolean or a string
where a number belongs, a number where text or a boolean belongs, a value outside ``gt/ge/lt/le``,
an unknown enum value, an unknown key in a nested section, a wrong element in a list. Each is
written to a YAML file and checked with ``tunelab validate`` in-process: exactly one line on
stderr, naming the field, exit code 2, no traceback.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tunelab.cli import main
from tunelab.config import ExperimentConfig, dump_yaml, load_yaml

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=8)
_UNKNOWN_KEY = "zz_not_a_field"


@dataclass(frozen=True)
class Case:
    """One way a field's value can be wrong: a fixed example and a strategy for more."""

    kind: str
    example: Any
    strategy: st.SearchStrategy


@dataclass(frozen=True)
class FieldSpec:
    path: tuple[str, ...]
    annotation: Any
    constraints: tuple[Any, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _strip(annotation: Any, constraints: tuple[Any, ...] = ()) -> tuple[Any, tuple[Any, ...]]:
    """Drop ``None`` from unions and ``Annotated`` wrappers, collecting their constraints."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = get_args(annotation)
            constraints += tuple(extra)
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return typing.Union[tuple(members)], constraints  # noqa: UP007
            annotation = members[0]
        else:
            return annotation, constraints


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def walk(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Every field of ``model`` and of the sections inside it, by dotted path."""
    found: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        annotation, constraints = _strip(info.annotation, tuple(info.metadata))
        spec = FieldSpec((*prefix, name), annotation, constraints)
        found.append(spec)
        if _is_model(annotation):
            found += walk(annotation, spec.path)
    return found


def _bounds(constraints: tuple[Any, ...]) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for c in constraints:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(c, getattr(at, name.capitalize())):
                bounds[name] = getattr(c, name)
    return bounds


def _out_of_range(kind: type, constraints: tuple[Any, ...]) -> list[Case]:
    cases = []
    b = _bounds(constraints)
    if kind is int:
        if "gt" in b:
            cases.append(Case("below gt", int(b["gt"]), st.integers(max_value=int(b["gt"]))))
        if "ge" in b:
            cases.append(
                Case("below ge", int(b["ge"]) - 1, st.integers(max_value=int(b["ge"]) - 1))
            )
        if "lt" in b:
            cases.append(Case("above lt", int(b["lt"]), st.integers(min_value=int(b["lt"]))))
        if "le" in b:
            cases.append(
                Case("above le", int(b["le"]) + 1, st.integers(min_value=int(b["le"]) + 1))
            )
        return cases
    finite = {"allow_nan": False, "allow_infinity": False}
    if "gt" in b:
        cases.append(Case("below gt", b["gt"], st.floats(max_value=b["gt"], **finite)))
    if "ge" in b:
        below = math.nextafter(b["ge"], -math.inf)
        cases.append(Case("below ge", b["ge"] - 1, st.floats(max_value=below, **finite)))
    if "lt" in b:
        cases.append(Case("above lt", b["lt"], st.floats(min_value=b["lt"], **finite)))
    if "le" in b:
        above = math.nextafter(b["le"], math.inf)
        cases.append(Case("above le", b["le"] + 1, st.floats(min_value=above, **finite)))
    return cases


def wrong_values(annotation: Any, constraints: tuple[Any, ...] = ()) -> list[Case]:
    """The ways a value of ``annotation`` (with ``constraints``) can be wrong."""
    annotation, constraints = _strip(annotation, constraints)
    origin = get_origin(annotation)
    not_a_list = Case("text for a list", "x", _TEXT)
    if _is_model(annotation):
        return [
            Case("nested unknown key", {_UNKNOWN_KEY: 1}, st.just({_UNKNOWN_KEY: 1})),
            Case("text for a section", "x", _TEXT),
            Case("number for a section", 3, st.integers()),
        ]
    if annotation is bool:
        return [
            Case("number for a boolean", 1, st.integers()),
            Case("text for a boolean", "yes", _TEXT),
        ]
    if annotation in (int, float):
        cases = [
            Case("bool for a number", True, st.booleans()),
            Case("string for a number", "10", _TEXT),
            Case("non-finite number", math.inf, st.sampled_from([math.inf, -math.inf, math.nan])),
            Case("list for a number", [1], st.lists(st.integers(), min_size=1, max_size=2)),
        ]
        if annotation is int:
            cases.append(
                Case(
                    "fraction for an integer",
                    2.5,
                    st.floats(allow_nan=False, allow_infinity=False).filter(
                        lambda f: not f.is_integer()
                    ),
                )
            )
        return cases + _out_of_range(annotation, constraints)
    if annotation is str:
        return [
            Case("number for text", 5, st.integers()),
            Case("bool for text", True, st.booleans()),
            Case("list for text", ["a"], st.lists(_TEXT, min_size=1, max_size=2)),
        ]
    if origin is Literal:
        options = get_args(annotation)
        return [
            Case(
                "unknown enum value",
                "zz_bogus",
                _TEXT.filter(lambda t: t not in options),
            ),
            Case("number for an enum", 7, st.integers()),
        ]
    if origin is list:
        (item,) = get_args(annotation)
        inner = wrong_values(item)
        return [
            not_a_list,
            Case("bool for a list", False, st.booleans()),
            *(
                Case(f"list of {c.kind}", [c.example], st.builds(lambda v: [v], c.strategy))
                for c in inner[:2]
            ),
        ]
    if origin is tuple:
        return [not_a_list, Case("number for a list", 3, st.integers())]
    if origin is dict:
        _, value = get_args(annotation)
        cases = [
            Case("list for a mapping", [1, 2], st.lists(st.integers(), min_size=1, max_size=3)),
            Case("text for a mapping", "x", _TEXT),
        ]
        if value is not Any:
            cases += [
                Case(
                    f"mapping of {c.kind}",
                    {"k": c.example},
                    st.builds(lambda v: {"k": v}, c.strategy),
                )
                for c in wrong_values(value)[:1]
            ]
        return cases
    if origin in (Union, types.UnionType):
        # A union of scalars (tune.timeout: text, int or float): neither a boolean nor a list.
        return [
            Case("bool for a scalar union", True, st.booleans()),
            Case("list for a scalar union", [1], st.lists(st.integers(), min_size=1, max_size=2)),
        ]
    raise AssertionError(f"no wrong values derived for annotation {annotation!r}")


FIELDS = walk(ExperimentConfig)
CASES = [(f, c) for f in FIELDS for c in wrong_values(f.annotation, f.constraints)]


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def _validate(value: Any, field: FieldSpec) -> tuple[int, str]:
    data = _nest(field.path, value)
    text = dump_yaml(data)
    assert load_yaml(text) == data or _has_nan(value), "the YAML round trip changed the value"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["validate", str(path)])
                code = 0
            except SystemExit as exited:
                code = exited.code
    return code, err.getvalue()


def _has_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _check(field: FieldSpec, kind: str, value: Any) -> None:
    code, err = _validate(value, field)
    lines = [line for line in err.splitlines() if line.strip()]
    context = f"{field.dotted} ({kind}) = {value!r}: exit {code}, stderr {err!r}"
    assert code == 2, context
    assert len(lines) == 1, context
    assert "Traceback" not in err, context
    assert lines[0].startswith("config error: "), context
    assert field.dotted in lines[0], context


def test_the_walk_covers_every_section_and_derives_wrong_values_for_every_field():
    dotted = {f.dotted for f in FIELDS}
    for expected in (
        "seed",
        "train.lr",
        "train.schedule.warmup_epochs",
        "data.clean.dtypes",
        "data.synthetic.weights",
        "tune.cv.folds",
        "tune.objectives",
        "compress.sparsity",
        "deploy.port",
        "diagnose.rounds",
        "model.params",
    ):
        assert expected in dotted
    with_cases = {f.dotted for f, _ in CASES}
    assert with_cases == dotted
    assert len(FIELDS) > 120


@pytest.mark.parametrize(("field", "case"), CASES, ids=[f"{f.dotted}:{c.kind}" for f, c in CASES])
def test_each_derived_wrong_value_is_one_line_naming_the_field(field, case):
    _check(field, case.kind, case.example)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_fuzzed_wrong_values_are_one_line_naming_the_field(data):
    field, case = data.draw(st.sampled_from(CASES), label="field and kind")
    value = data.draw(case.strategy, label=f"{field.dotted} ({case.kind})")
    _check(field, case.kind, value)
