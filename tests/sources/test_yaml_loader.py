"""The faster safe loader gives exactly what PyYAML's safe loader gives, errors included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadtest import meshgen
from tests.builders import yaml_text
from xds.sources import yaml_loader

REFERENCE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEMO = Path(__file__).parents[2] / "xds" / "sources" / "demo"

CASES = {
    "plain manifest": "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: x}}\n",
    "YAML 1.1 booleans and nulls": "a: yes\nb: No\nc: on\nd: OFF\ne: ~\nf: null\ng:\nh: ''\n",
    "numbers": "a: 0x1F\nb: 0o17\nc: 017\nd: 1_000\ne: .inf\nf: -.Inf\ng: 1e3\nh: 6.5\n"
    "i: 190:20:30\nj: +12\n",
    "quoted look-alikes stay text": "a: 'true'\nb: \"8080\"\nc: '~'\nd: \"null\"\n",
    "timestamps": "a: 2026-01-15T09:00:00Z\nb: 2026-01-15\nc: 2001-12-14 21:59:43.10 -5\n",
    "binary": "a: !!binary aGVsbG8=\n",
    "explicit tags": "a: !!str 123\nb: !!int '7'\nc: !!float '1'\nd: ! 12\ne: !!null ''\n",
    "anchors and aliases share one object": "a: &x {k: [1, 2]}\nb: *x\nc: &y [a]\nd: *y\n",
    "merge keys": "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
    "merge of a list of maps": "a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}\n",
    "value key": "a: {=: 1, b: 2}\n",
    "sets and ordered maps": "a: !!set {x, y}\nb: !!omap [{x: 1}, {y: 2}]\nc: !!pairs [{x: 1}]\n",
    "duplicate keys: the last wins": "a: 1\na: 2\n",
    "non-text keys": "1: one\ntrue: yes\n~: nothing\n2026-01-01: day\n1.5: x\n",
    "several documents, some empty": "---\na: 1\n---\n---\n- x\n- y\n--- plain\n",
    "block scalars": "a: |\n  line\n  ---\n  more\nb: >-\n  folded\n  text\n",
    "nested lists": "- [1, [2, [3, []]]]\n- {}\n- - a\n  - b\n",
    "unicode": 'name: ünïcödé\nemoji: "\\U0001F600"\n',
    "comments only": "# nothing here\n",
}
ERRORS = {
    "unhashable key": "? [a, b]\n: v\n",
    "unknown tag": "a: !!python/object:os.system x\n",
    "bad int under an explicit tag": "a: !!int x\n",
    "broken syntax": "a: [1, 2\n",
    "undefined alias": "a: *nowhere\n",
    "bad merge": "a: {<<: 1}\n",
}


def _load(text: str, loader: type[yaml.SafeLoader]) -> object:
    return list(yaml.load_all(text, Loader=loader))


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_documents_load_as_pyyaml_loads_them(text: str) -> None:
    ours = _load(text, yaml_loader.Loader)
    assert ours == _load(text, REFERENCE)
    assert [type(x) for x in ours] == [type(x) for x in _load(text, REFERENCE)]


def test_an_alias_is_the_same_object() -> None:
    [document] = _load(CASES["anchors and aliases share one object"], yaml_loader.Loader)
    assert isinstance(document, dict)
    assert document["a"] is document["b"] and document["c"] is document["d"]


def test_a_recursive_alias_loads_as_pyyaml_makes_it() -> None:
    text = "a: &x [1, *x]\n"
    assert repr(_load(text, yaml_loader.Loader)) == repr(_load(text, REFERENCE))


@pytest.mark.parametrize("text", ERRORS.values(), ids=ERRORS.keys())
def test_bad_documents_fail_as_pyyaml_fails(text: str) -> None:
    with pytest.raises(Exception) as reference:  # whatever PyYAML raises
        _load(text, REFERENCE)
    with pytest.raises(type(reference.value)) as ours:
        _load(text, yaml_loader.Loader)
    assert str(ours.value) == str(reference.value)


def test_whole_meshes_load_alike() -> None:
    texts = [path.read_text() for path in sorted(DEMO.glob("*.yaml"))]
    spec = meshgen.MeshSpec(pods=300, services=30, namespaces=3, waypoints=2)
    texts.append(yaml_text(*meshgen.manifests(spec)))
    for text in texts:
        assert _load(text, yaml_loader.Loader) == _load(text, REFERENCE)


def test_only_unusual_documents_take_the_safe_constructor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: object, node: object) -> object:
        raise AssertionError("the safe constructor was used")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", refuse)
    for name in ("plain manifest", "numbers", "timestamps", "anchors and aliases share one object"):
        _load(CASES[name], yaml_loader.Loader)
    with pytest.raises(AssertionError, match="safe constructor"):
        _load(CASES["merge keys"], yaml_loader.Loader)
