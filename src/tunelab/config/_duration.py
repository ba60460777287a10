"""Durations written as ``90``, ``90s``, ``10m``, ``1.5h``."""

from __future__ import annotations

import re

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``; raises ValueError naming the allowed forms."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match:
        raise ValueError(f"expected a duration like 90s, 10m or 1.5h, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]
