"""A CSV is UTF-8 text: other encodings, NUL bytes and raw bytes stop with one line naming the
file, the offset and line of the first bad byte and the fix — never ``b'caf\\xe9'`` labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tunelab.config import DataConfig
from tunelab.data import prepare_data
from tunelab.errors import DataError

from .data_helpers import config

ROWS = "".join(f"{i % 7},{'café' if i % 2 else 'thé'}\n" for i in range(40))
TEXT = "x,label\n" + ROWS


def _fails(cfg, *needles: str) -> str:
    with pytest.raises(DataError) as info:
        prepare_data(cfg, seed=0)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith("data error: "), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def test_latin1_csv_names_the_first_bad_byte_and_the_fix(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_bytes(TEXT.encode("latin-1"))
    message = _fails(config(source="csv", path=str(path)), str(path), "not UTF-8", "re-save")
    assert "byte 0xe9 at offset 12 (line 2)" in message
    assert "b'" not in message


def test_utf8_with_a_byte_order_mark_reads_as_utf8(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(TEXT.encode("utf-8-sig"))
    bundle = prepare_data(config(source="csv", path=str(path)), seed=0)
    assert bundle.classes == ["café", "thé"] and bundle.feature_names == ["x"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_are_named_as_such(tmp_path, codec):
    path = tmp_path / "wide.csv"
    path.write_bytes(TEXT.encode(codec))
    _fails(config(source="csv", path=str(path)), codec.upper(), "byte-order mark", "UTF-8")


def test_nul_bytes_are_refused_with_their_line(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"x,label\n1,0\n2\x00,1\n")
    _fails(config(source="csv", path=str(path)), "NUL byte at offset 13 (line 3)")


@pytest.mark.parametrize("codec", ["latin-1", "cp1252", "utf-16"])
def test_a_declared_encoding_reads_a_file_that_is_not_utf8(tmp_path, codec):
    path = tmp_path / "shop.csv"
    path.write_bytes(TEXT.encode(codec))
    cfg = DataConfig(source="csv", path=str(path), encoding=codec)
    assert prepare_data(cfg, seed=0).classes == ["café", "thé"]


def test_a_declared_encoding_leaves_utf8_files_alone(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(TEXT, encoding="utf-8")
    cfg = DataConfig(source="csv", path=str(path), encoding="latin-1")
    assert prepare_data(cfg, seed=0).classes == ["café", "thé"]


def test_an_unknown_or_wrong_declared_encoding_is_one_line(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_bytes(TEXT.encode("utf-16"))
    _fails(DataConfig(source="csv", path=str(path), encoding="klingon"), "unknown encoding")
    _fails(DataConfig(source="csv", path=str(path), encoding="ascii"), "cannot be read as ascii")


def test_a_short_row_is_named_instead_of_padded_with_missing_values(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("a,b,label\n1,2,0\n3,1\n5,6,0\n")
    _fails(config(source="csv", path=str(path)), "line 3 has 2 field(s) but the header has 3")


def test_parquet_bytes_columns_are_refused_not_turned_into_reprs(tmp_path):
    path = tmp_path / "b.parquet"
    frame = pd.DataFrame({"x": np.arange(20.0), "label": [b"caf\xe9", b"th\xe9"] * 10})
    frame.to_parquet(path)
    _fails(config(source="parquet", path=str(path)), "column 'label'", "raw bytes")


def test_npz_byte_strings_decode_as_utf8_or_stop(tmp_path):
    good = tmp_path / "good.npz"
    labels = np.array(["café".encode(), "thé".encode()] * 10)
    np.savez(good, X=np.arange(20.0)[:, None], y=labels)
    assert prepare_data(config(source="numpy", path=str(good)), seed=0).classes == ["café", "thé"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.arange(20.0)[:, None], y=np.array([b"caf\xe9", b"th\xe9"] * 10))
    _fails(config(source="numpy", path=str(bad)), "not UTF-8")


def test_npz_with_complex_features_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, X=np.ones((10, 2), np.complex64), y=np.arange(10) % 2)
    _fails(config(source="numpy", path=str(path)), "dtype complex64")
