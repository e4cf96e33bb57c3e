"""The log schema in docs/ is the contract dashboards read: code and doc must agree."""

from __future__ import annotations

import re
from pathlib import Path

from mhs.events import Event

ROOT = Path(__file__).parents[1]
SCHEMA = (ROOT / "docs/log-schema.md").read_text()


def _code() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "mhs").rglob("*.py"))


def test_every_event_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", SCHEMA, flags=re.MULTILINE))
    missing = {e.value for e in Event} - documented
    assert not missing, f"events logged but not in docs/log-schema.md: {sorted(missing)}"


def test_every_documented_event_exists() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", SCHEMA, flags=re.MULTILINE))
    assert documented <= {e.value for e in Event}


def test_every_event_is_logged_somewhere() -> None:
    code = _code()
    unused = [e.name for e in Event if f"Event.{e.name}" not in code]
    assert not unused, f"events defined but never logged: {unused}"


def test_code_logs_only_enum_events() -> None:
    # A bare string event would escape the schema check above.
    bare = re.findall(r"\blog\.(?:info|warning|error)\(\s*\"", _code())
    assert not bare
