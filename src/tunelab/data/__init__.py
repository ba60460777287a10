"""The data stage: load, clean, scale, split and augment; hands a :class:`DataBundle` on."""

from ._bundle import DataBundle

__all__ = ["DataBundle"]
