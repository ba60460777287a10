"""Shared fixtures of the models tests: one CPU thread (the machine is shared), seeded torch."""

from __future__ import annotations
