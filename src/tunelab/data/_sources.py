"""Sources: read CSV, Parquet, ``.npy``/``.npz``, sklearn's bundled sets and synthetic sets.

Image folders and CIFAR batch files live in ``_images.py``. Every reader returns a
:class:`RawTable` or :class:`RawImages` and leaves the values as they were — cleaning is the next
step's job, so the profile can count what it changed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import ConfigError
from ._csv import read_csv
from ._images import images_to_nchw, load_cifar, load_image_folder
from ._raw import RawImages, RawTable, data_error, short, where

LABEL_GUESSES = ("label", "target", "y", "class", "labels", "targets")
NPZ_X_KEYS = ("X", "x", "data", "features", "images", "inputs")
NPZ_Y_KEYS = ("y", "Y", "labels", "label", "target", "targets")


def load_source(cfg: DataConfig, *, seed: int) -> RawTable | RawImages:
    """Read ``cfg.source``; nothing is cleaned, converted or dropped here."""
    if cfg.source == "sklearn":
        return load_sklearn(cfg)
    if cfg.source == "synthetic":
        return load_synthetic(cfg, seed=seed)
    path = Path(cfg.path or "")
    if not path.exists():
        raise data_error(str(path), "no such file or directory (data.path)")
    if cfg.source == "image_folder":
        return load_image_folder(path, image_size=cfg.image_size, grayscale=cfg.grayscale)
    if cfg.source == "cifar":
        return load_cifar(path, image_size=cfg.image_size)
    if cfg.source == "numpy":
        return load_numpy(path, cfg)
    frame = read_csv(path, encoding=cfg.encoding) if cfg.source == "csv" else read_parquet(path)
    return split_label(frame, cfg, origin=str(path), line_offset=2 if cfg.source == "csv" else None)


# ---- tables ----------------------------------------------------------------------------------


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise data_error(str(path), f"cannot read Parquet: {_first_line(exc)}") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise data_error(str(path), "the file is empty (no rows)")
    return frame.reset_index(drop=True)


def split_label(
    frame: pd.DataFrame,
    cfg: DataConfig,
    *,
    origin: str,
    line_offset: int | None = None,
    classes: list[str] | None = None,
    task: Any = None,
) -> RawTable:
    """Separate the label column from the feature columns chosen by ``data.features``."""
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    label = cfg.label
    if label is None:
        label = next((c for c in LABEL_GUESSES if c in columns), None)
        if label is None:
            raise data_error(
                origin,
                "no label column (none of label, target, y, class); set data.label to one of "
                f"the columns: {_listing(columns)}",
            )
    elif label not in columns:
        raise data_error(
            origin,
            f"no label column {label!r} (data.label){_suggest(label, columns)}; "
            f"columns: {_listing(columns)}",
        )
    features = cfg.features or [c for c in columns if c != label]
    unknown = [c for c in features if c not in columns]
    if unknown:
        raise data_error(
            origin,
            f"data.features names column {unknown[0]!r}, which is not in the file"
            f"{_suggest(unknown[0], columns)}; columns: {_listing(columns)}",
        )
    if label in features:
        raise data_error(origin, f"column {label!r} is both the label and a feature")
    if not features:
        raise data_error(origin, f"no feature columns besides the label {label!r}")
    for column in (*features, label):
        _refuse_bytes(frame[column], column, origin)
    return RawTable(
        origin=origin,
        label_name=label,
        classes=classes,
        task=task,
        line_offset=line_offset,
        frame=frame[features],
        labels=frame[label],
    )


def _refuse_bytes(series: pd.Series, column: str, origin: str) -> None:
    """Raw bytes are not text: as categories or labels they would read ``b'caf\\xe9'``."""
    if series.dtype != object:
        return
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind != "bytes" and not kind.startswith("mixed"):
        return
    found = next((v for v in series if isinstance(v, (bytes, bytearray))), None)
    if found is not None:
        raise data_error(
            where(origin, column=column),
            f"holds raw bytes such as {short(bytes(found))}, not text; store the column as "
            "UTF-8 strings (decode the bytes before saving the file)",
        )


# ---- numpy files -----------------------------------------------------------------------------


def load_numpy(path: Path, cfg: DataConfig) -> RawTable | RawImages:
    """``.npz`` with ``X`` and ``y`` arrays (optional ``classes``, ``feature_names``), or a 2-D
    ``.npy`` whose label is column ``data.label`` (an index, default the last column)."""
    origin = str(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise data_error(
                origin, f"cannot read without unpickling: {_first_line(exc)}"
            ) from None
        raise data_error(origin, f"cannot read as .npy/.npz: {_first_line(exc)}") from None
    except Exception as exc:
        raise data_error(origin, f"cannot read as .npy/.npz: {_first_line(exc)}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            X, y, classes, names = _npz_arrays(loaded, cfg, origin)
    else:
        X, y = _npy_arrays(_usable(loaded, "the array", origin), cfg, origin)
        classes = names = None
    X, y = _usable(X, "X", origin), _usable(y, "y", origin)
    if X.ndim == 0 or y.ndim == 0:
        raise data_error(origin, "X and y must be arrays with one row per example, not scalars")
    if len(X) == 0:
        raise data_error(origin, "the file is empty (no rows)")
    if len(X) != len(y):
        raise data_error(origin, f"X has {len(X)} rows but y has {len(y)}")
    if X.dtype == object or y.dtype == object:
        raise data_error(origin, "object arrays are not supported (they need pickle)")
    if X.ndim >= 3:
        return RawImages(
            origin=origin,
            classes=classes,
            task="classification",
            images=images_to_nchw(X, origin),
            labels=np.asarray(y),
        )
    return _array_table(X, y, cfg, origin, classes=classes, names=names)


def _npz_arrays(
    loaded: Any, cfg: DataConfig, origin: str
) -> tuple[np.ndarray, np.ndarray, list[str] | None, list[str] | None]:
    """``(X, y, classes, feature_names)`` of an ``.npz`` archive, found by their usual names."""
    keys = list(loaded.files)
    x_key = next((k for k in NPZ_X_KEYS if k in keys), None)
    y_key = cfg.label or next((k for k in NPZ_Y_KEYS if k in keys), None)
    if x_key is None:
        raise data_error(
            origin, f"no feature array (one of {', '.join(NPZ_X_KEYS)}); arrays: {keys}"
        )
    if y_key is None or y_key not in keys:
        raise data_error(
            origin,
            f"no label array {y_key or '(y, labels or target)'}; arrays: {keys}",
        )
    classes = names = None
    try:
        X, y = loaded[x_key], loaded[y_key]
        if "classes" in keys:
            classes = _names(loaded["classes"], "classes", origin)
        if "feature_names" in keys:
            names = _names(loaded["feature_names"], "feature_names", origin)
    except ValueError as exc:  # object arrays: numpy would need pickle
        raise data_error(origin, f"cannot read without unpickling: {_first_line(exc)}") from None
    except Exception as exc:  # a truncated or corrupt member of the archive
        raise data_error(origin, f"cannot read the .npz archive: {_first_line(exc)}") from None
    return X, y, classes, names


def _usable(array: np.ndarray, name: str, origin: str) -> np.ndarray:
    """Numbers or text: bytes (``S``) arrays decoded as UTF-8, other dtypes refused."""
    kind = array.dtype.kind
    if kind == "S":
        try:
            return np.char.decode(array, "utf-8")
        except UnicodeDecodeError:
            raise data_error(
                origin, f"{name} holds bytes that are not UTF-8 text; save text as str arrays"
            ) from None
    if kind in "biufUO":  # object arrays are refused later, naming pickle
        return array
    raise data_error(
        origin,
        f"{name} has dtype {array.dtype}; expected numbers (bool, int, float) or text",
    )


def _names(array: np.ndarray, name: str, origin: str) -> list[str]:
    """``classes`` / ``feature_names`` of an archive as a list of strings."""
    values = _usable(np.asarray(array), name, origin)
    if values.ndim != 1:
        raise data_error(origin, f"{name} must be a 1-D array, got shape {tuple(values.shape)}")
    return [str(v) for v in values.tolist()]


def _npy_arrays(array: np.ndarray, cfg: DataConfig, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a 2-D ``.npy`` table whose label is one of its columns."""
    if array.ndim != 2 or array.shape[1] < 2:
        raise data_error(
            origin,
            f"a .npy file must be a 2-D table with the label as one column, got shape "
            f"{tuple(array.shape)}; save images as .npz with arrays X and y",
        )
    column = _npy_label_column(cfg.label, array.shape[1], origin)
    return np.delete(array, column, axis=1), array[:, column]


def _array_table(
    X: np.ndarray,
    y: np.ndarray,
    cfg: DataConfig,
    origin: str,
    *,
    classes: list[str] | None,
    names: list[str] | None,
) -> RawTable:
    """Feature and label arrays as a :class:`RawTable` (columns ``f0, f1, ...`` unless named)."""
    if X.ndim == 1:
        X = X[:, None]
    names = names or [f"f{i}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise data_error(origin, f"{len(names)} feature_names for {X.shape[1]} feature columns")
    frame = pd.DataFrame(X, columns=names)
    if y.ndim == 2 and y.shape[1] > 1:
        # Several regression targets stay one array; cleaning only checks them for NaN.
        table = split_label(frame.assign(__label__=0.0), _with_label(cfg), origin=origin)
        table.labels, table.task = y, "regression"
    else:
        frame["__label__"] = np.ravel(y)
        table = split_label(frame, _with_label(cfg), origin=origin, classes=classes)
    table.label_name = "y"
    return table


def _npy_label_column(label: str | None, width: int, origin: str) -> int:
    if label is None:
        return width - 1
    try:
        column = int(label)
    except ValueError:
        raise data_error(
            origin, f"data.label must be a column index for a .npy table, got {label!r}"
        ) from None
    if not -width <= column < width:
        raise data_error(origin, f"data.label column {column} is outside 0..{width - 1}")
    return column % width


def _with_label(cfg: DataConfig) -> DataConfig:
    return cfg.model_copy(update={"label": "__label__"})


# ---- bundled and synthetic sets --------------------------------------------------------------


def load_sklearn(cfg: DataConfig) -> RawTable | RawImages:
    """One of sklearn's bundled sets; ``data.as_images`` makes digits ``1x8x8`` images."""
    from sklearn import datasets

    name = cfg.dataset
    loaders = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": lambda **kw: datasets.load_diabetes(scaled=False, **kw),
    }
    bunch = loaders[name](as_frame=True)
    origin = f"sklearn:{name}"
    task = "regression" if name == "diabetes" else "classification"
    classes = None if task == "regression" else [str(c) for c in bunch.target_names]
    if cfg.as_images:
        if name != "digits":
            raise ConfigError(
                f"config error: data.as_images = True — only the digits set has images, "
                f"not {name!r}"
            )
        return RawImages(
            origin=origin,
            classes=classes,
            task=task,
            images=bunch.images[:, None].astype(np.float32),
            labels=bunch.target.to_numpy(),
        )
    frame = bunch.frame if bunch.frame is not None else bunch.data
    label = "target"
    if label not in frame.columns:
        frame = bunch.data.assign(target=bunch.target)
    sub = cfg.model_copy(update={"label": label})
    return split_label(frame, sub, origin=origin, classes=classes, task=task)


def load_synthetic(cfg: DataConfig, *, seed: int) -> RawTable:
    """``make_classification`` / ``make_regression`` with ``data.synthetic``'s parameters."""
    from sklearn import datasets

    s = cfg.synthetic
    try:
        if s.task == "classification":
            X, y = datasets.make_classification(
                n_samples=s.n_samples,
                n_features=s.n_features,
                n_informative=s.n_informative,
                n_redundant=s.n_redundant,
                n_classes=s.n_classes,
                class_sep=s.class_sep,
                flip_y=s.flip_y,
                weights=s.weights,
                random_state=seed,
            )
        else:
            X, y = datasets.make_regression(
                n_samples=s.n_samples,
                n_features=s.n_features,
                n_informative=min(s.n_informative, s.n_features),
                noise=s.noise,
                random_state=seed,
            )
    except ValueError as exc:
        raise ConfigError(f"config error: data.synthetic — {_first_line(exc)}") from None
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["target"] = y
    origin = f"synthetic:{s.task}"
    classes = [str(i) for i in range(s.n_classes)] if s.task == "classification" else None
    sub = cfg.model_copy(update={"label": "target"})
    return split_label(frame, sub, origin=origin, classes=classes, task=s.task)


# ---- helpers ---------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _listing(columns: list[str], limit: int = 30) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


def _suggest(bad: str, options: list[str]) -> str:
    close = difflib.get_close_matches(bad, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
