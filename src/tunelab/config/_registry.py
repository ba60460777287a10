"""Names that later stages register so a config can refer to them (``model.builder: mine``).

The config layer cannot import the stages after it, so each registry there (model builders,
callbacks, remedies, compression methods) announces its names here; validation then accepts
the built-in names plus whatever has been registered in this process.
"""

from __future__ import annotations

BUILTIN_NAMES: dict[str, tuple[str, ...]] = {
    "model.builder": ("mlp", "cnn", "resnet", "lstm", "gru", "transformer", "custom"),
    "compress.methods": ("prune", "quantize", "distill"),
}

_registered: dict[str, set[str]] = {}


def register_name(kind: str, name: str) -> None:
    """Let configs use ``name`` for ``kind`` (e.g. ``register_name("model.builder", "unet")``)."""
    _registered.setdefault(kind, set()).add(name)


def allowed_names(kind: str) -> list[str]:
    names = list(BUILTIN_NAMES.get(kind, ()))
    names += sorted(_registered.get(kind, set()) - set(names))
    return names
