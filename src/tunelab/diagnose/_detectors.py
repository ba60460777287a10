"""Imports every built-in detector module so that each registers itself."""

from . import (  # noqa: F401
    _detect_activations,
    _detect_batches,
    _detect_fit,
    _detect_gradients,
    _detect_loss,
    _detect_resources,
)
