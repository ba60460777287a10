"""Property-based fuzz over every file input (issue 16 point 9): CSV, Parquet, NumPy and image
folders built from bad encodings, NUL bytes, header-only and empty files, ragged rows, inf/nan,
huge values, constant columns, one-class labels, truncated files and wrong kinds of paths.

Whatever the input, ``prepare_data`` either succeeds with finite tensors or raises a
``DataError`` of exactly one line that names the file — never another exception, never a
traceback. A few of the failures also go through ``tunelab data profile`` in a subprocess: one
line on stderr, exit code 2.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.data import prepare_data
from tunelab.errors import DataError

from .data_helpers import config

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same cases on every run, so a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NUMBERS = ["0", "1", "2", "-3", "4.5", "17", "0.25", "-8", "3", "1e-320"]
NON_FINITE = ["1e308", "-1e308", "1e400", "-1e400", "inf", "-inf", "nan", "NaN", ""]
WORDS = ["café", "thé", "red", "blue", "n/a", "true", "false", "2024-01-02"]
ODD = ['"quoted, comma"', "\x00", "\r", " ", "9" * 400, '"', "a\tb"]
COLUMN_KINDS = {
    "numeric": st.sampled_from(NUMBERS),
    "dirty numeric": st.sampled_from(NUMBERS * 2 + NON_FINITE),
    "words": st.sampled_from(WORDS),
    "constant": st.just("7"),
    "anything": st.sampled_from(NUMBERS + NON_FINITE + WORDS + ODD),
}
# utf-8 first: hypothesis favours the first choices, and most cases should reach cleaning
ENCODINGS = st.sampled_from(
    ["utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-32"]
)
RARELY = st.sampled_from([False, False, False, False, True])


def _outcome(cfg, name: str) -> str:
    """Run ``prepare_data``; ``"ok"`` (tensors finite) or the one-line error naming ``name``."""
    try:
        bundle = prepare_data(cfg, seed=0)
    except DataError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1, repr(message)
        assert message.startswith("data error: "), message
        assert name in message, f"{name!r} not named in {message!r}"
        return message
    for split in ("train", "val", "test"):
        X = getattr(bundle, f"X_{split}")
        assert bool(X.isfinite().all()), f"non-finite {split} features"
    assert "b'" not in "".join(bundle.classes + bundle.feature_names)
    return "ok"


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tunelab-fuzz-"))


# ---- CSV -------------------------------------------------------------------------------------


@st.composite
def csv_bytes(draw) -> bytes:
    names = draw(
        st.lists(st.sampled_from(["x", "y2", "c", "z"]), unique=True, min_size=1, max_size=3)
    )
    kinds = [draw(st.sampled_from(list(COLUMN_KINDS))) for _ in names]
    label = draw(st.sampled_from(["classes", "classes", "one class", "numbers", "dirty", "none"]))
    columns = names + ([] if label == "none" else ["label"])
    lines = [",".join(columns)] if columns or draw(st.booleans()) else []
    ragged = draw(RARELY)
    for i in range(draw(st.integers(0, 3) if draw(RARELY) else st.integers(10, 40))):
        cells = [draw(COLUMN_KINDS[k]) for k in kinds]
        if label == "classes":
            cells.append(["a", "b", "c"][i % 3])
        elif label == "one class":
            cells.append("a")
        elif label == "numbers":
            cells.append(str(i * 0.5))
        elif label == "dirty":
            cells.append(draw(COLUMN_KINDS["anything"]))
        if ragged and draw(RARELY):
            cells = cells[: draw(st.integers(0, len(cells)))] + draw(
                st.lists(st.just("1"), max_size=2)
            )
        lines.append(",".join(cells))
    text = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    data = text.encode(draw(ENCODINGS), errors="replace")
    if draw(RARELY) and data:  # truncated, maybe mid-character
        data = data[: draw(st.integers(0, len(data)))]
    return data


@FUZZ
@given(data=csv_bytes())
def test_fuzzed_csv_is_read_or_one_line(data):
    path = _workdir() / "fuzz.csv"
    path.write_bytes(data)
    _outcome(config(source="csv", path=str(path)), str(path))


# ---- Parquet ---------------------------------------------------------------------------------

COLUMN_VALUES = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
    st.lists(st.sampled_from([1e308, -1e308, 0.0, 1.0]), min_size=1, max_size=30),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30),
    st.lists(st.text(max_size=5), min_size=1, max_size=30),
    st.lists(st.sampled_from([b"caf\xe9", b"ok", None]), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=1, max_size=30),
    st.lists(st.just(3.0), min_size=1, max_size=30),
)


@st.composite
def parquet_bytes(draw) -> bytes:
    columns = draw(st.lists(COLUMN_VALUES, min_size=1, max_size=4))
    rows = min(len(c) for c in columns)
    frame = pd.DataFrame({f"c{i}": c[:rows] for i, c in enumerate(columns)})
    label = draw(st.sampled_from(["two", "two", "one", "none"]))
    if label != "none":
        frame["label"] = [("a", "b")[i % 2] if label == "two" else "a" for i in range(rows)]
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    data = buffer.getvalue()
    if draw(RARELY):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@FUZZ
@given(data=parquet_bytes())
def test_fuzzed_parquet_is_read_or_one_line(data):
    path = _workdir() / "fuzz.parquet"
    path.write_bytes(data)
    _outcome(config(source="parquet", path=str(path)), str(path))


# ---- NumPy -----------------------------------------------------------------------------------

DTYPES = st.sampled_from(
    ["float64", "float32", "int64", "uint8", "bool", "complex64", "U3", "S3", "datetime64[s]"]
)


@st.composite
def numpy_file(draw) -> tuple[str, bytes]:
    odd = draw(RARELY)
    dims = st.lists(st.integers(0 if odd else 4, 6), min_size=0 if odd else 2, max_size=4)
    shape = tuple(draw(dims))
    dtype = draw(DTYPES)
    size = int(np.prod(shape)) if shape else 1
    raw = draw(
        st.lists(
            st.sampled_from([0, 1, 2, 3, 1e308, -np.inf, np.nan]), min_size=size, max_size=size
        )
    )
    values = np.asarray(raw, dtype=np.float64).reshape(shape)
    with np.errstate(all="ignore"):
        if dtype in ("U3", "S3"):
            array = values.astype(dtype)
        elif dtype == "datetime64[s]":
            array = np.zeros(shape, dtype=dtype)
        else:
            array = np.nan_to_num(values).astype(dtype) if dtype[0] in "iub" else values
            array = array.astype(dtype)
    buffer = io.BytesIO()
    if draw(st.booleans()):
        suffix = ".npy"
        np.save(buffer, array)
    else:
        suffix = ".npz"
        y = np.arange(len(array) if array.ndim else 1) % draw(st.integers(1, 3))
        np.savez(buffer, **{draw(st.sampled_from(["X", "data", "w"])): array, "y": y})
    data = buffer.getvalue()
    if draw(RARELY):
        data = data[: draw(st.integers(0, len(data)))]
    return suffix, data


@FUZZ
@given(item=numpy_file())
def test_fuzzed_numpy_is_read_or_one_line(item):
    suffix, data = item
    path = _workdir() / f"fuzz{suffix}"
    path.write_bytes(data)
    _outcome(config(source="numpy", path=str(path)), str(path))


# ---- image folders ---------------------------------------------------------------------------


def _png(size: tuple[int, int], mode: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_ITEMS = st.sampled_from(["png", "png", "png_gray", "readme", "subfolder", "dotfile"])
BAD_ITEMS = st.sampled_from(
    ["png", "png_other_size", "truncated_png", "text_as_png", "empty_png", "readme"]
)


@st.composite
def image_tree(draw) -> dict[str, list[str]]:
    few = 0 if draw(RARELY) else 2
    names = draw(
        st.lists(st.sampled_from(["cat", "dog", "owl"]), unique=True, min_size=few, max_size=3)
    )
    items = BAD_ITEMS if draw(RARELY) else GOOD_ITEMS
    return {n: draw(st.lists(items, min_size=few, max_size=6)) for n in names}


def _write_tree(root: Path, tree: dict[str, list[str]]) -> None:
    good = _png((6, 5), "RGB")
    for name, items in tree.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i, item in enumerate(items):
            target = folder / f"{i}.png"
            if item == "png":
                target.write_bytes(good)
            elif item == "png_other_size":
                target.write_bytes(_png((4, 4), "RGB"))
            elif item == "png_gray":
                target.write_bytes(_png((6, 5), "L"))
            elif item == "truncated_png":
                target.write_bytes(good[: len(good) // 2])
            elif item == "text_as_png":
                target.write_text("not an image")
            elif item == "empty_png":
                target.write_bytes(b"")
            elif item == "readme":
                (folder / f"README{i}.txt").write_text("notes")
            elif item == "subfolder":
                (folder / f"deeper{i}").mkdir()
                (folder / f"deeper{i}" / "x.png").write_bytes(good)
            else:
                (folder / f".hidden{i}.png").write_bytes(b"junk")


@FUZZ
@given(tree=image_tree(), size=st.sampled_from([None, [4, 4]]))
def test_fuzzed_image_folder_is_read_or_one_line(tree, size):
    root = _workdir() / "photos"
    root.mkdir()
    _write_tree(root, tree)
    _outcome(config(source="image_folder", path=str(root), image_size=size), str(root))


# ---- the wrong kind of path ------------------------------------------------------------------

FILE_SOURCES = ("csv", "parquet", "numpy")
FOLDER_SOURCES = ("image_folder", "cifar")


def _path_case(tmp_path: Path, case: str) -> Path:
    if case == "directory":
        (tmp_path / "data.bin").mkdir()
        return tmp_path / "data.bin"
    if case == "file":
        (tmp_path / "data.bin").write_bytes(b"x,label\n1,0\n")
        return tmp_path / "data.bin"
    if case == "through_a_file":  # a path whose parent is a file: unreadable, even as root
        (tmp_path / "plain").write_text("x")
        return tmp_path / "plain" / "data.bin"
    if case == "broken_link":
        (tmp_path / "data.bin").symlink_to(tmp_path / "gone")
        return tmp_path / "data.bin"
    if case == "missing":
        return tmp_path / "nothing" / "here.bin"
    raise AssertionError(case)


@pytest.mark.parametrize("source", FILE_SOURCES + FOLDER_SOURCES)
@pytest.mark.parametrize("case", ["directory", "file", "through_a_file", "broken_link", "missing"])
def test_wrong_kind_of_path_is_one_line(tmp_path, source, case):
    path = _path_case(tmp_path, case)
    _outcome(config(source=source, path=str(path)), str(path))


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode"
)
@pytest.mark.parametrize("source", FILE_SOURCES)
def test_unreadable_file_is_one_line(tmp_path, source):
    path = tmp_path / "locked.bin"
    path.write_bytes(b"x,label\n1,0\n2,1\n")
    path.chmod(0)
    try:
        _outcome(config(source=source, path=str(path)), str(path))
    finally:
        path.chmod(0o600)


# ---- through the CLI -------------------------------------------------------------------------


def _cli_cases(tmp_path: Path) -> dict[str, tuple[str, Path]]:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("x,label\n1,café\n2,thé\n".encode("latin-1"))
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"x,label\n1\x00,0\n")
    npy = tmp_path / "cut.npy"
    buffer = io.BytesIO()
    np.save(buffer, np.ones((10, 3)))
    npy.write_bytes(buffer.getvalue()[:100])
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    return {
        "latin": ("csv", latin),
        "nul": ("csv", nul),
        "truncated npy": ("numpy", npy),
        "directory": ("csv", folder),
    }


SUBPROCESS_CASES = ("latin", "truncated npy")  # each starts Python and torch: keep them few


def test_cli_data_profile_gives_one_line_and_exit_2(tmp_path):
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cases = _cli_cases(tmp_path)
    for name in SUBPROCESS_CASES:
        source, path = cases[name]
        cfg = tmp_path / f"{name.replace(' ', '_')}.yaml"
        cfg.write_text(f"data:\n  source: {source}\n  path: '{path}'\n")
        done = subprocess.run(
            [sys.executable, "-m", "tunelab.cli", "data", "profile", str(cfg)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 2, (name, done.stderr)
        assert done.stdout == "", (name, done.stdout)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("data error: "), (name, done.stderr)
        assert str(path) in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["latin", "nul", "truncated npy", "directory"])
def test_cli_data_profile_in_process_gives_one_line_and_exit_2(tmp_path, capsys, name):
    from tunelab.cli import main

    source, path = _cli_cases(tmp_path)[name]
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data:\n  source: {source}\n  path: '{path}'\n")
    with pytest.raises(SystemExit) as info:
        main(["data", "profile", str(cfg)])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("data error: ") and str(path) in err
