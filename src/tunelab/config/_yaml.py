"""The YAML reader of config files: YAML 1.2 floats, and duplicated keys are errors.

PyYAML implements YAML 1.1, where ``1e-4`` (no dot) is a string; every user means the number,
as YAML 1.2 and JSON do, so such scalars resolve to floats here. A key written twice in one
mapping silently keeps the last value in PyYAML; here it is an error naming the key and both
lines.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
    """A mapping names the same key twice; ``path`` is the dotted key (``train.epochs``)."""

    def __init__(self, path: str, first_line: int, second_line: int) -> None:
        super().__init__(f"key {path!r} appears twice (lines {first_line} and {second_line})")
        self.key = path
        self.first_line = first_line
        self.second_line = second_line


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats (``1e-4`` is a number)."""


class ConfigDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes every string :class:`ConfigLoader` would read otherwise.

    A string such as ``"1e-4"`` is written quoted, so a written config reads back the same.
    """


for _cls in (ConfigLoader, ConfigDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _check_duplicates(
    node: Node | None, path: tuple[str, ...] = (), seen_nodes: set[int] | None = None
) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # an alias: checked once (and a recursive one ends here)
        return
    seen_nodes.add(id(node))
    if isinstance(node, MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                ident = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if ident in seen:
                    raise DuplicateKeyError(".".join((*path, key_node.value)), seen[ident], line)
                seen[ident] = line
                _check_duplicates(value_node, (*path, key_node.value), seen_nodes)
            else:
                _check_duplicates(value_node, (*path, "?"), seen_nodes)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, (*path, str(i)), seen_nodes)


def load_yaml(text: str) -> Any:
    """Parse one YAML document: YAML 1.2 floats, and a key written twice is an error."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        _check_duplicates(node)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    """YAML text that :func:`load_yaml` reads back as ``data`` (keys kept in order)."""
    return yaml.dump(data, Dumper=ConfigDumper, sort_keys=False, allow_unicode=True)


__all__ = ["ConfigDumper", "ConfigLoader", "DuplicateKeyError", "dump_yaml", "load_yaml"]
