"""What ``POST /predict`` accepts, checked field by field before anything reaches the model.

Tabular models take rows of named raw features (``{"rows": [{"age": 41, "city": "Oslo"}]}``)
exactly as the training data had them; image and sequence models take nested lists, one per
row. Every problem is an :class:`InputError` carrying the HTTP status (422, or 413 for too many
rows) and a message that names the row, the feature and what was expected. Strings are never
handed to an image transform (it would read them as file paths on the server).

Rows are taken as users have them: a numeric feature sent as a string that parses cleanly as a
finite number (``"30"``, ``" 1.5 "``) is that number, and ``?extra=ignore`` drops columns the
model does not use (an id, the label) instead of refusing the row.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_NUMERIC = ("float", "int", "number", "numeric")
# Plain decimal notation, as a CSV cell holds a number; nan, inf and hex are not numbers here.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class InputError(Exception):
    """A request the server refuses: ``status`` (422/413) and a one-line ``message``."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not a valid JSON number; send finite numbers only")


def parse_body(body: bytes, *, max_rows: int) -> list[Any]:
    """The ``rows`` list of a JSON body ``{"rows": [...]}``, or an :class:`InputError`."""
    if not body or not body.strip():
        raise InputError('empty body; expected JSON like {"rows": [...]}')
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except InputError:
        raise
    except RecursionError:
        raise InputError("body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(data, list):
        raise InputError('body must be a JSON object {"rows": [...]}, got a bare list')
    if not isinstance(data, dict):
        raise InputError(f'body must be a JSON object {{"rows": [...]}}, got {_kind(data)}')
    unknown = [k for k in data if k != "rows"]
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} in the body; expected only 'rows'")
    if "rows" not in data:
        raise InputError('missing field "rows" in the body')
    rows = data["rows"]
    if not isinstance(rows, list):
        raise InputError(f'"rows" must be a list, got {_kind(rows)}')
    if not rows:
        raise InputError('"rows" is empty; send at least one row')
    if len(rows) > max_rows:
        raise InputError(
            f"{len(rows)} rows in one request; at most {max_rows} are allowed", status=413
        )
    return rows


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        text = value if len(value) <= 30 else value[:27] + "..."
        return f"the string {text!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _finite(value: Any, where: str) -> float:
    if isinstance(value, str):
        value = _number_text(value, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InputError(f"{where}: {value!r} is not a finite number")
    return number


def _number_text(text: str, where: str) -> float:
    """A string that is plainly a finite number (as a CSV cell is), else an :class:`InputError`.

    Only decimal notation counts: ``"nan"``, ``"inf"``, ``"0x1f"`` and ``"1_000"`` are refused,
    so a value is never guessed at.
    """
    stripped = text.strip()
    if stripped and len(stripped) <= 64 and _DECIMAL.fullmatch(stripped):
        number = float(stripped)
        if math.isfinite(number):
            return number
        raise InputError(f"{where}: {text!r} is not a finite number")
    raise InputError(f"{where}: expected a number, got {_kind(text)}")


@dataclass
class InputSchema:
    """The raw input a model accepts: named table features, or a per-row tensor shape.

    Build one with :func:`schema_for`; :meth:`parse` turns validated rows into what the
    preprocessing (or, without one, the model) takes.
    """

    kind: str
    fields: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    fillable: set[str] = field(default_factory=set)
    fill_values: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        if self.kind == "table":
            return {
                "kind": "table",
                "format": '{"rows": [{"<feature>": value, ...}, ...]}',
                "features": self.fields,
                "null_imputes": sorted(self.fillable),
                "extra_columns": "refused; POST /predict?extra=ignore drops them",
            }
        return {
            "kind": self.kind,
            "format": '{"rows": [<nested list>, ...]}',
            "row_shapes": [list(s) for s in self.shapes],
        }

    def example(self) -> dict[str, Any]:
        """A valid request body (shown in the OpenAPI docs), with values a row could have.

        A table feature shows its training fill value (the median of a numeric column, the most
        frequent category) where the preprocessing kept one, else the first known category.
        """
        if self.kind == "table":
            row = {}
            for f in self.fields:
                name, cats = f["name"], f.get("categories")
                fill = self.fill_values.get(name)
                if f["dtype"] == "bool":
                    row[name] = bool(fill) if fill is not None else False
                elif cats:
                    row[name] = fill if fill in cats else cats[0]
                else:
                    row[name] = _round_example(fill)
            return {"rows": [row]}
        return {"rows": [np.zeros(self.shapes[0]).tolist()]}

    def parse(self, rows: list[Any], *, ignore_extra: bool = False) -> tuple[Any, list[str]]:
        """``(raw input, warnings)``: clean columns (table) or a float array (tensor).

        Warnings note accepted but unusual values, such as a category never seen in training
        (the preprocessing encodes it as "none of the known categories").
        ``ignore_extra`` drops table columns the model does not use instead of refusing them.
        """
        if self.kind == "table":
            return self._parse_table(rows, ignore_extra=ignore_extra)
        return self._parse_tensor(rows), []

    def _parse_table(
        self, rows: list[Any], *, ignore_extra: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """Columns ``{feature: values}`` (what the table preprocessing reads) and warnings."""
        names = [f["name"] for f in self.fields]
        known = set(names)
        ignored: set[str] = set()
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InputError(
                    f"row {i}: expected an object of named features ({_preview(names)}), "
                    f"got {_kind(row)}"
                )
            if row.keys() == known:
                continue
            unknown = [k for k in row if k not in known]
            if unknown and not ignore_extra:
                raise InputError(self._unknown_message(i, unknown[0], names))
            ignored.update(unknown)
            missing = [n for n in names if n not in row]
            if missing:
                raise InputError(self._missing_message(i, missing))
        columns: dict[str, Any] = {}
        warnings = []
        if ignored:
            warnings.append(f"ignored columns the model does not use: {_preview(sorted(ignored))}")
        for f in self.fields:
            name = f["name"]
            values = [row[name] for row in rows]
            if f["dtype"] in _NUMERIC and all(type(v) in (int, float) for v in values):
                # Fast path for a clean numeric column; anything odd takes the path below,
                # which names the row and the problem.
                try:
                    array = np.asarray(values, dtype=np.float64)
                except OverflowError:
                    array = None
                if array is not None and np.isfinite(array).all():
                    columns[name] = array
                    continue
            columns[name] = [self._value(f, v, i) for i, v in enumerate(values)]
            if f.get("categories"):
                unseen = sorted(set(columns[name]) - set(f["categories"]) - {None})
                if unseen:
                    warnings.append(
                        f"feature {name!r}: {', '.join(map(repr, unseen[:5]))} not seen in "
                        f"training (known: {_preview(list(f['categories']))})"
                    )
        return columns, warnings

    def _unknown_message(self, i: int, name: str, names: list[str]) -> str:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"row {i}: unknown feature {name!r}{hint}; expected features: {_preview(names)}; "
            "POST /predict?extra=ignore drops columns the model does not use"
        )

    def _missing_message(self, i: int, missing: list[str]) -> str:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        if first in self.fillable:
            return (
                f"row {i}: missing feature {first!r}{more}; send null to impute it with the "
                "training fill value"
            )
        return f"row {i}: missing feature {first!r}{more} (it has no fill value: send a value)"

    def _value(self, spec: dict[str, Any], value: Any, i: int) -> Any:
        name, dtype = spec["name"], spec["dtype"]
        where = f"row {i}, feature {name!r}"
        if value is None:
            if name in self.fillable:
                return None
            raise InputError(f"{where}: null is not allowed (this feature has no fill value)")
        if dtype == "bool":
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            raise InputError(f"{where}: expected true or false, got {_kind(value)}")
        if dtype in _NUMERIC:
            return _finite(value, where)
        # category / str: the training data's text; numbers are read as their text.
        if isinstance(value, str):
            if len(value) > 1000:
                raise InputError(f"{where}: text longer than 1000 characters")
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = _finite(value, where)
            return str(int(number)) if number.is_integer() else str(number)
        raise InputError(f"{where}: expected a category (text), got {_kind(value)}")

    def _parse_tensor(self, rows: list[Any]) -> np.ndarray:
        shape0 = self.shapes[0]
        out = np.empty((len(rows), *shape0), dtype=np.float32)
        for i, row in enumerate(rows):
            array = _numeric_array(row, f"row {i}")
            if array.shape == shape0:
                out[i] = array
                continue
            for alt in self.shapes[1:]:
                if array.shape == alt:
                    out[i] = _to_canonical(array, alt, shape0)
                    break
            else:
                accepted = " or ".join("x".join(map(str, s)) for s in self.shapes)
                got = "x".join(map(str, array.shape)) or "a scalar"
                raise InputError(f"row {i}: expected shape {accepted}, got {got}")
        return out


def _numeric_array(row: Any, where: str) -> np.ndarray:
    """A nested list of numbers as float64, refusing strings, booleans, nulls and ragged rows."""
    if not isinstance(row, list):
        raise InputError(f"{where}: expected a nested list of numbers, got {_kind(row)}")
    stack = [row]
    while stack:
        node = stack.pop()
        for item in node:
            if isinstance(item, list):
                stack.append(item)
            elif isinstance(item, bool) or not isinstance(item, (int, float)):
                raise InputError(f"{where}: expected numbers, found {_kind(item)}")
    try:
        array = np.asarray(row, dtype=np.float64)
    except (ValueError, OverflowError):
        raise InputError(f"{where}: nested lists of unequal lengths (ragged)") from None
    if not np.isfinite(array).all():
        raise InputError(f"{where}: contains NaN or infinity")
    return array


def _to_canonical(
    array: np.ndarray, alt: tuple[int, ...], canonical: tuple[int, ...]
) -> np.ndarray:
    """(H, W, C) -> (C, H, W) and (H, W) -> (1, H, W) for images."""
    if len(alt) == 3 and len(canonical) == 3 and alt == (*canonical[1:], canonical[0]):
        return array.transpose(2, 0, 1)
    return array.reshape(canonical)


def _round_example(value: Any) -> float:
    """A numeric fill value as an example: finite, with four significant digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return float(f"{number:.4g}") if math.isfinite(number) else 0.0


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def schema_for(preprocessing: Any, spec: Any) -> InputSchema:
    """The input schema from the saved preprocessing (or the model's input shape without one)."""
    input_shape = tuple(int(d) for d in spec.input_shape)
    if preprocessing is None or not hasattr(preprocessing, "input_schema"):
        return InputSchema("tensor", shapes=[input_shape])
    kind = getattr(preprocessing, "kind", "")
    fields = [
        f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in preprocessing.input_schema()
    ]
    if kind == "table":
        fill = getattr(preprocessing, "fill_", {}) or {}
        fillable = {name for name, value in fill.items() if value is not None}
        return InputSchema("table", fields=fields, fillable=fillable, fill_values=dict(fill))
    if kind == "image":
        c, h, w = (int(v) for v in fields[0]["shape"])
        shapes = [(c, h, w), (h, w, c)]
        if c == 1:
            shapes.append((h, w))
        return InputSchema("image", shapes=list(dict.fromkeys(shapes)))
    return InputSchema("tensor", shapes=[input_shape])
