"""The YAML reader of config files: YAML 1.2 floats, and duplicated keys are errors.

PyYAML implements YAML 1.1, where ``1e-4`` (no dot) is a string; every user means the number,
as YAML 1.2 and JSON do, so such scalars resolve to floats here. A key written twice in one
mapping silently keeps the last value in PyYAML; here it is an error naming both lines.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode

# YAML 1.2's core-schema float (plus 1.1's forms PyYAML already reads): ``1e-4``, ``1E5``,
# ``-2.5e+3``, ``.5``, ``1.``, ``.inf``, ``.nan``.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first_line} and {second_line})")
        self.key = key
        self.first_line = first_line
        self.second_line = second_line


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats and duplicate-key detection."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, first, line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass: no object tags


__all__ = ["ConfigLoader", "DuplicateKeyError", "load_yaml"]
