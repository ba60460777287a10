"""Image sources: folders of PNG/JPEG files in class sub-folders, and CIFAR python batch files.

CIFAR-10's "python version" is a pickle of a dict (``data`` uint8 ``(n, 3072)``, ``labels``,
``filenames``). We never call a general ``pickle.load`` on it: :class:`_BatchUnpickler` resolves
only numpy's array-reconstruction functions, so a file that names any other callable (the way a
malicious pickle runs code) stops with an error before anything is called.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ._raw import RawImages, data_error

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ---- image folders ---------------------------------------------------------------------------


def load_image_folder(path: Path, *, image_size: list[int] | None, grayscale: bool) -> RawImages:
    """``path/<class>/<image>`` -> uint8 ``(n, C, H, W)``; class names are the sub-folders."""
    origin = str(path)
    if not path.is_dir():
        raise data_error(origin, "data.source 'image_folder' needs a directory of class folders")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise data_error(origin, "no class sub-folders (expected path/<class>/<image>.png)")
    files: list[Path] = []
    labels: list[int] = []
    ignored = 0
    for index, folder in enumerate(class_dirs):
        for file in sorted(folder.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(file)
                labels.append(index)
            else:
                ignored += 1
    if not files:
        raise data_error(origin, "no PNG or JPEG images in the class sub-folders")
    mode = "L" if grayscale else "RGB"
    resize = (int(image_size[0]), int(image_size[1])) if image_size else None
    first = decode_image(files[0], mode=mode, size=resize, name=str(files[0]))
    images = np.empty((len(files), *first.shape), dtype=np.uint8)
    images[0] = first
    for i, file in enumerate(files[1:], start=1):
        array = decode_image(file, mode=mode, size=resize, name=str(file))
        if array.shape != first.shape:
            raise data_error(
                str(file),
                f"inconsistent image sizes: {_hw(array)} but {files[0]} is {_hw(first)}; "
                "set data.image_size: [height, width] to resize",
            )
        images[i] = array
    raw = RawImages(
        origin=origin,
        label_name="folder",
        classes=[d.name for d in class_dirs],
        task="classification",
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        items=[str(f.relative_to(path)) for f in files],
        mode=mode,
        resize_to=resize,
        ignored=ignored,
    )
    if ignored:
        raw.notes.append(f"ignored {ignored} file(s) that are not PNG or JPEG")
    return raw


def decode_image(
    source: Any, *, mode: str, size: tuple[int, int] | None, name: str = "image"
) -> np.ndarray:
    """One image (path, bytes or PIL image) as uint8 ``(C, H, W)``, resized to ``size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, (bytes, bytearray)):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(source)
        with image:
            image.load()
            converted = image.convert(mode)
            if size is not None and converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise data_error(name, f"unreadable image: {reason}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def images_to_nchw(array: np.ndarray, origin: str) -> np.ndarray:
    """``(n, H, W)``, ``(n, C, H, W)`` or ``(n, H, W, C)`` -> ``(n, C, H, W)``."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[1] not in (1, 3, 4) and array.shape[-1] in (1, 3, 4):
            array = array.transpose(0, 3, 1, 2)
        elif array.shape[1] not in (1, 3, 4):
            raise data_error(
                origin,
                f"cannot tell the channel axis of images shaped {tuple(array.shape)}; "
                "expected (n, C, H, W) or (n, H, W, C) with 1, 3 or 4 channels",
            )
    else:
        raise data_error(origin, f"images must have 3 or 4 dimensions, got {array.ndim}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise data_error(origin, f"images must be numeric, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise data_error(origin, f"row {row + 1}: the image holds NaN or inf values")
    return array


def _hw(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[2]}"


# ---- CIFAR python batches --------------------------------------------------------------------


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

    def latin1_encode(text: str, encoding: str = "latin1") -> bytes:
        # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1").
        if encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"encoding {encoding!r} is not allowed")
        return text.encode("latin1")

    table: dict[tuple[str, str], Any] = {("_codecs", "encode"): latin1_encode}
    for module in ("numpy.core", "numpy._core"):
        table[(f"{module}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{module}.numeric", "_frombuffer")] = _frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    return table


class _BatchUnpickler(pickle.Unpickler):
    """Reads dicts, lists, bytes, str, numbers and numpy arrays; refuses every other global."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR batch/meta file as a dict with ``str`` keys, through the restricted unpickler."""
    if path.stat().st_size == 0:
        raise data_error(str(path), "the file is empty")
    try:
        with open(path, "rb") as handle:
            loaded = _BatchUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise data_error(str(path), f"not a CIFAR python batch file: {reason}") from None
    if not isinstance(loaded, dict):
        raise data_error(str(path), f"not a CIFAR batch: holds a {type(loaded).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in loaded.items()}


def _batch_files(path: Path) -> tuple[list[Path], Path | None]:
    if path.is_dir():
        files = sorted(path.glob("data_batch_*")) + sorted(path.glob("test_batch*"))
        files += [p for p in (path / "train", path / "test") if p.is_file()]  # CIFAR-100
        if not files:
            raise data_error(str(path), "no CIFAR batch files (data_batch_*, test_batch)")
        folder = path
    else:
        files, folder = [path], path.parent
    meta = next((m for m in (folder / "batches.meta", folder / "meta") if m.is_file()), None)
    return files, meta


def load_cifar(path: Path, *, image_size: list[int] | None) -> RawImages:
    """CIFAR-10/100 python batches: a directory (every batch, pooled) or a single batch file."""
    files, meta_path = _batch_files(path)
    classes = None
    if meta_path is not None:
        meta = read_batch(meta_path)
        names = meta.get("label_names", meta.get("fine_label_names"))
        if names is not None:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    images, labels, items = [], [], []
    for file in files:
        batch = read_batch(file)
        data = batch.get("data")
        label_list = batch.get("labels", batch.get("fine_labels"))
        if not isinstance(data, np.ndarray) or label_list is None:
            raise data_error(
                str(file), f"a CIFAR batch needs 'data' and 'labels'; keys: {sorted(batch)}"
            )
        if data.dtype == object or not np.issubdtype(data.dtype, np.number):
            raise data_error(str(file), f"'data' must be numeric, got dtype {data.dtype}")
        y = np.asarray(label_list)
        if not np.issubdtype(y.dtype, np.integer):
            raise data_error(str(file), f"'labels' must be integers, got dtype {y.dtype}")
        if len(y) != len(data):
            raise data_error(str(file), f"{len(data)} images but {len(y)} labels")
        if classes is not None:
            bad = np.flatnonzero((y < 0) | (y >= len(classes)))
            if len(bad):
                row = int(bad[0])
                raise data_error(
                    str(file),
                    f"row {row + 1}: label {int(y[row])} is out of range 0..{len(classes) - 1} "
                    f"({meta_path.name if meta_path else 'meta'} names {len(classes)} classes)",
                )
        images.append(_cifar_rows(data, image_size, str(file)))
        labels.append(y.astype(np.int64))
        items += [f"{file.name} row {i + 1}" for i in range(len(y))]
    shapes = {a.shape[1:] for a in images}
    if len(shapes) > 1:
        raise data_error(str(path), f"inconsistent image sizes across batches: {sorted(shapes)}")
    stacked = np.concatenate(images)
    if len(stacked) == 0:
        raise data_error(str(path), "the batch files hold no images")
    return RawImages(
        origin=str(path),
        label_name="labels",
        classes=classes,
        task="classification",
        images=stacked,
        labels=np.concatenate(labels),
        items=items,
        mode="RGB" if stacked.shape[1] == 3 else None,
    )


def _cifar_rows(data: np.ndarray, image_size: list[int] | None, origin: str) -> np.ndarray:
    """CIFAR rows are flat ``C*H*W`` (channel-major); 4-D arrays are taken as they are."""
    if data.ndim == 4:
        return images_to_nchw(data, origin)
    if data.ndim != 2:
        raise data_error(origin, f"'data' must be (n, C*H*W), got shape {tuple(data.shape)}")
    width = data.shape[1]
    if image_size:
        h, w = int(image_size[0]), int(image_size[1])
        channels = width // (h * w)
        if channels * h * w != width:
            raise data_error(origin, f"rows of {width} values do not split into {h}x{w} images")
    else:
        channels = 3 if width % 3 == 0 and math.isqrt(width // 3) ** 2 == width // 3 else 1
        side = math.isqrt(width // channels)
        if side * side * channels != width:
            raise data_error(
                origin, f"rows of {width} values are not square images; set data.image_size"
            )
        h = w = side
    return images_to_nchw(data.reshape(len(data), channels, h, w), origin)
