"""PyYAML's safe loader, with the Python half of its work done in fewer steps.

libyaml (``CSafeLoader``) parses in C, but resolving each plain scalar's tag and
building the Python objects is Python, and that was ~60 % of reading a manifest
(10k-pod mesh: 2.2 s of YAML). ``Loader`` gives the same objects as ``CSafeLoader``
(``tests/sources/test_yaml_loader.py`` compares them on tricky documents and on
whole meshes) in about 60 % of the time:

* a plain scalar's tag depends on its text alone (the safe loader has no path
  resolvers), so it is looked up once per distinct text;
* documents of plain maps, lists and scalars are built by one tight recursion
  instead of the constructor's generic machinery. Anything else (merge keys,
  explicit tags, sets...) is built by the safe constructor itself, so the
  result and the errors are PyYAML's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalar tags whose safe constructors return the value (no two-step generators).
_SCALAR_TAGS = ("null", "bool", "int", "float", "timestamp", "binary")
_SCALARS = {
    f"tag:yaml.org,2002:{name}": yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{name}"]
    for name in _SCALAR_TAGS
}
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 1 << 17  # distinct texts; past this the table starts again


class _Unusual(Exception):
    """The document needs the safe constructor's full machinery."""


class Loader(_BASE):  # type: ignore[valid-type,misc]
    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]
        if not implicit[0]:
            return _STR  # quoted, or a non-specific "!" tag
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            if len(_PLAIN_TAGS) >= _PLAIN_TAGS_MAX:
                _PLAIN_TAGS.clear()
            tag = _PLAIN_TAGS[value] = super().resolve(kind, value, implicit)
        return tag

    # Path resolvers are never registered on the safe loader: nothing to track.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def construct_document(self, node: Node) -> Any:
        try:
            return self._build(node, {})
        except (_Unusual, TypeError):  # TypeError: an unhashable key
            return super().construct_document(node)

    def _build(self, node: Node, built: dict[int, Any]) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            if node.tag == _STR:
                return node.value
            construct = _SCALARS.get(node.tag)
            if construct is None:
                raise _Unusual
            return construct(self, node)
        # An alias is the node itself again: the same object, as PyYAML makes it.
        done = built.get(id(node))
        if done is not None:
            return done
        if kind is MappingNode and node.tag == _MAP:
            mapping: dict[Any, Any] = {}
            built[id(node)] = mapping
            for key_node, value_node in node.value:
                if key_node.tag != _STR and key_node.tag not in _SCALARS:
                    raise _Unusual  # merge ("<<") and value ("=") keys, complex keys
                mapping[self._build(key_node, built)] = self._build(value_node, built)
            return mapping
        if kind is SequenceNode and node.tag == _SEQ:
            sequence: list[Any] = []
            built[id(node)] = sequence
            sequence.extend([self._build(item, built) for item in node.value])
            return sequence
        raise _Unusual


def load_all(text: str) -> Iterator[Any]:
    """The documents of ``text``, as ``yaml.safe_load_all`` gives them."""
    return yaml.load_all(text, Loader=Loader)
