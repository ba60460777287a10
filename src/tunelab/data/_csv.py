"""CSV files: read as UTF-8 text (a byte-order mark allowed), or stop with one line saying why not.

A CSV is text, and text has an encoding. pyarrow reads bytes that are not UTF-8 as a binary
column without complaint, and those values would become ``b'caf\\xe9'`` labels and categories;
so before parsing, one pass over the bytes checks that the file is UTF-8 text: no UTF-16/32
byte-order mark, no NUL byte (a binary file, or UTF-16 without a mark), no byte sequence that
does not decode. A file that fails names the offset and line of the first bad byte and how to fix
it. Where the data config declares an encoding (``data.encoding``), a file that is not UTF-8 is
read in that encoding instead.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ._raw import data_error

CHUNK = 1 << 24  # bytes per read of the text check: 16 MiB
UTF8_NAMES = frozenset({"utf8", "utf-8", "utf_8", "utf-8-sig", "utf8-sig", "utf_8_sig"})
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_csv(path: Path, *, encoding: str | None = None) -> pd.DataFrame:
    """A CSV with a header row; the pyarrow parser for speed, pandas' for line-numbered errors.

    ``encoding`` (``data.encoding``) is used only when the file is not
    UTF-8; without it such a file is a one-line error naming the first bad byte.
    """
    origin = str(path)
    if path.is_dir():
        raise data_error(origin, "is a directory; data.source 'csv' needs a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise data_error(origin, f"cannot read the file: {exc.strerror or exc}") from None
    if size == 0:
        raise data_error(origin, "the file is empty")
    problem = text_problem(path)
    declared = encoding if encoding and encoding.lower() not in UTF8_NAMES else None
    if problem is not None and declared is None:
        raise data_error(origin, problem + _fix(encoding))
    frame = _parse(path, declared if problem is not None else None)
    if frame.shape[1] == 0:
        raise data_error(origin, "the file is empty")
    if len(frame) == 0:
        raise data_error(origin, "the file has a header but no data rows")
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise data_error(origin, f"column name {str(repeated[0])!r} appears more than once")
    return frame


def text_problem(path: Path) -> str | None:
    """Why the file is not UTF-8 text (first bad byte's offset and line), or ``None``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 0
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            for bom, name in _BOMS:
                if head.startswith(bom):
                    return f"the file is {name} text (it starts with a {name} byte-order mark)"
            chunk = head + handle.read(CHUNK)
            while chunk:
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    line = lines + chunk.count(b"\n", 0, nul) + 1
                    return (
                        f"NUL byte at offset {offset + nul} (line {line}); a CSV is text — the "
                        "file is binary, or UTF-16/32 text without a byte-order mark"
                    )
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    at = offset + exc.start
                    line = lines + chunk.count(b"\n", 0, exc.start) + 1
                    byte = chunk[exc.start]
                    return f"not UTF-8 text: byte 0x{byte:02x} at offset {at} (line {line})"
                lines += chunk.count(b"\n")
                offset += len(chunk)
                chunk = handle.read(CHUNK)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"not UTF-8 text: the file ends inside a character (offset {offset})"
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    return None


def _fix(encoding: str | None) -> str:
    """How to fix a file that is not UTF-8 text."""
    if encoding:  # declared as UTF-8, and it is not
        return (
            f" (data.encoding is {encoding!r}); re-save the file as UTF-8 or declare its encoding"
        )
    return "; re-save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')" + _encoding_hint()


def _encoding_hint() -> str:
    return ", or set data.encoding to the file's encoding (e.g. latin-1, cp1252, utf-16)"


def _parse(path: Path, encoding: str | None) -> pd.DataFrame:
    origin = str(path)
    try:
        return _read_csv_arrow(path, encoding)
    except LookupError:
        raise data_error(origin, f"unknown encoding {encoding!r} (data.encoding)") from None
    except Exception:
        # pyarrow's messages carry no line number; pandas' C parser's do.
        try:
            frame = pd.read_csv(path, engine="c", low_memory=False, encoding=encoding)
        except pd.errors.EmptyDataError:
            raise data_error(origin, "the file is empty") from None
        except UnicodeError as exc:
            raise data_error(
                origin, f"cannot be read as {encoding or 'UTF-8'}: {_first_line(exc)}"
            ) from None
        except Exception as exc:
            raise data_error(origin, f"cannot parse CSV: {_first_line(exc)}") from None
        # pandas pads a short row with missing values where pyarrow refused it: name it.
        short = _ragged_line(path, encoding, len(frame.columns))
        if short is not None:
            line, fields = short
            raise data_error(
                origin,
                f"cannot parse CSV: line {line} has {fields} field(s) but the header has "
                f"{len(frame.columns)}",
            ) from None
        return frame


def _read_csv_arrow(path: Path, encoding: str | None = None) -> pd.DataFrame:
    """pyarrow's multi-threaded parser, handed to pandas without consolidating the columns
    into one block (that copy alone costs a second on a million rows). Empty strings are
    missing, as in pandas; text stays Arrow-backed ``str``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if encoding is not None:
        codecs.lookup(encoding)  # LookupError for a name Python does not know
    read = pacsv.ReadOptions(encoding=encoding or "utf8")
    options = pacsv.ConvertOptions(strings_can_be_null=True)
    table = pacsv.read_csv(path, read_options=read, convert_options=options)
    text = _string_dtype()
    mapper = {pa.string(): text, pa.large_string(): text}.get
    return table.to_pandas(
        split_blocks=True, self_destruct=True, types_mapper=mapper, date_as_object=False
    )


def _ragged_line(path: Path, encoding: str | None, width: int) -> tuple[int, int] | None:
    """``(line, fields)`` of the first data row whose field count differs from the header's."""
    try:
        with open(path, encoding=encoding or "utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for number, row in enumerate(reader):
                if number and row and len(row) != width:
                    return reader.line_num, len(row)
    except (csv.Error, UnicodeError, OSError):
        return None
    return None


def _string_dtype() -> pd.StringDtype:
    try:  # pandas >= 2.3: the NaN-missing "str" dtype pandas 3 uses by default
        return pd.StringDtype("pyarrow", na_value=np.nan)
    except TypeError:
        return pd.StringDtype("pyarrow")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
