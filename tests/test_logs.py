"""One line per event, istiod's level words, and the JSON form."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sys
from pathlib import Path

import pytest

from xds.logs import JsonFormatter, LineFormatter

from .conftest import REPO
from .helpers import free_port, http_ready, serve_process, wait_until


def record(level: int, message: str, *, exc: bool = False, **fields: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            exc_info = sys.exc_info()
    item = logging.LogRecord("xds.file", level, "", 0, message, (), exc_info)
    for key, value in fields.items():
        setattr(item, key, value)
    return item


@pytest.mark.parametrize(
    ("level", "word"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warn"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "fatal"),
    ],
)
def test_level_words_are_istiods(level: int, word: str) -> None:
    assert LineFormatter().format(record(level, "m")).split(" ")[1] == word
    assert json.loads(JsonFormatter().format(record(level, "m")))["level"] == word


@pytest.mark.parametrize("formatter", [LineFormatter(), JsonFormatter()], ids=["line", "json"])
def test_every_event_is_one_line(formatter: logging.Formatter) -> None:
    text = formatter.format(
        record(
            logging.WARNING,
            "invalid YAML:\n  in line 3\r\n",
            exc=True,
            file="a b.yaml",
            reason='say "no"\nthen',
        )
    )
    assert "\n" not in text and "\r" not in text
    if isinstance(formatter, JsonFormatter):
        event = json.loads(text)
        assert event["scope"] == "file" and event["msg"].startswith("invalid YAML:\n")
        assert event["file"] == "a b.yaml" and "ValueError: bad\nvalue" in event["stack"]
    else:
        assert r"invalid YAML:\n  in line 3\r\n" in text
        assert 'file="a b.yaml"' in text and r'reason="say \"no\"\nthen"' in text
        assert r"ValueError: bad\nvalue" in text


async def test_serve_log_as_json_writes_only_json(tmp_path: Path) -> None:
    from xds.sources.demo import demo_directory

    mesh = tmp_path / "mesh"
    shutil.copytree(demo_directory(), mesh, ignore=shutil.ignore_patterns("*.py"))
    (mesh / "90-broken.yaml").write_text("kind: Pod\nmetadata: [unclosed\n")
    http_port = free_port()
    process = await serve_process(
        0, http_port, "--config", str(mesh), "--log-as-json", stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
    finally:
        process.terminate()
        await process.wait()
    assert process.stderr is not None
    lines = (await process.stderr.read()).decode().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert {"time", "level", "scope", "msg"} <= set(events[0])
    [broken] = [e for e in events if "90-broken.yaml" in e.get("file", "")]
    assert broken["level"] == "warn" and "invalid YAML/JSON" in broken["msg"]
    assert any(e["msg"] == "ready" for e in events)


def test_the_session_log_scan_finds_key_and_token_material() -> None:
    from .conftest import _SessionLog

    scan = _SessionLog()
    for message in (
        "issued -----BEGIN PRIVATE KEY----- MIGH",
        "authorization: Bearer abcdefghijklmnopqrstuvwxyz",
        "token eyJhbGciOiJSUzI1NiIsImtpZCI6.x",
        "the Bearer token is not known",
        "cert for spiffe://cluster.local/ns/a",
        "csr is not PEM: no '-----BEGIN CERTIFICATE REQUEST-----' block",
    ):
        scan.handle(logging.LogRecord("xds.ca", logging.INFO, "", 0, message, (), None))
    assert len(scan.leaks) == 3


def test_every_scope_the_code_logs_to_is_documented() -> None:
    """The README's scope list is what ``--log-level scope:level`` can name: a scope in
    the code that is not listed (or the reverse) is a level nobody can find."""
    pattern = re.compile(r'getLogger\("xds\.([a-z]+)"\)')
    used = {
        match
        for path in (REPO / "xds").rglob("*.py")
        for match in pattern.findall(path.read_text())
    }
    readme = (REPO / "README.md").read_text()
    paragraph = readme[readme.index("The scopes:") :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    documented = set(re.findall(r"`([a-z]+)`", paragraph))
    assert used == documented


async def test_a_served_process_logs_to_a_file_the_session_scans() -> None:
    from .conftest import _process_logs

    before = len(_process_logs)
    http_port = free_port()
    process = await serve_process(free_port(), http_port)
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
    finally:
        process.terminate()
        await process.wait()
    [log] = _process_logs[before:]
    assert " info app ready " in log.read_text()
