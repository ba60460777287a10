"""tunelab: from data to a tuned, diagnosed, compressed and served deep-learning model.

The sub-packages are the stages of the workflow, in the order they may import each other:
``config -> data -> models -> train -> diagnose -> tune -> compress -> deploy -> report -> cli``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
