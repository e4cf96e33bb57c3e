"""The log schema in docs/ is the contract dashboards read: code and doc must agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mhs.observe.events import Event

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


LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
# Added by the logging chain itself, not by the code that logs.
CHAIN_FIELDS = {"event", "timestamp", "level", "exception"}
FIELD_ROW = re.compile(
    r"^\| ((?:`[a-z_]+`(?:, )?)+) \| ((?:string|integer|number|boolean|object|array)) \|",
    flags=re.MULTILINE,
)


def documented_fields() -> dict[str, str]:
    """Field name -> its documented JSON type, from the schema's field tables."""
    fields: dict[str, str] = {}
    for names, kind in FIELD_ROW.findall(SCHEMA):
        for name in re.findall(r"`([a-z_]+)`", names):
            fields[name] = kind
    return fields


def _dict_keys(tree: ast.AST) -> dict[str, set[str]]:
    """Keys each dict variable is given: literals, ``x["k"] = ...`` and ``x.update(k=...)``."""
    keys: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict):
                    keys.setdefault(target.id, set()).update(
                        str(k.value) for k in node.value.keys if isinstance(k, ast.Constant)
                    )
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and isinstance(target.slice, ast.Constant)
                ):
                    keys.setdefault(target.value.id, set()).add(str(target.slice.value))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and isinstance(node.func.value, ast.Name)
        ):
            keys.setdefault(node.func.value.id, set()).update(k.arg for k in node.keywords if k.arg)
    return keys


def logged_fields() -> dict[str, set[str]]:
    """Field name -> where it is logged, for every ``log.<level>(Event.X, ...)`` in mhs/.

    A ``**name`` argument counts every key any dict called ``name`` is given in the package
    (the event dicts built once and passed around, such as ``fields``).
    """
    trees = {p: ast.parse(p.read_text()) for p in (ROOT / "mhs").rglob("*.py")}
    keys: dict[str, set[str]] = {}
    for tree in trees.values():
        for name, found in _dict_keys(tree).items():
            keys.setdefault(name, set()).update(found)
    fields: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and isinstance(node.args[0].value, ast.Name)
                and node.args[0].value.id == "Event"
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno} ({node.args[0].attr})"
            for keyword in node.keywords:
                if keyword.arg is not None:
                    names = {keyword.arg}
                elif isinstance(keyword.value, ast.Name) and keyword.value.id in keys:
                    names = keys[keyword.value.id]
                else:
                    names = {f"<**{ast.unparse(keyword.value)} cannot be read>"}
                for name in names:
                    fields.setdefault(name, set()).add(where)
    return fields


def test_every_logged_field_is_documented() -> None:
    documented = set(documented_fields()) | CHAIN_FIELDS
    logged = logged_fields()
    assert {"message_id", "status", "fault_id", "duration_ms"} <= set(logged)  # the scan works
    missing = {name: sorted(where) for name, where in logged.items() if name not in documented}
    assert not missing, f"fields logged but not in docs/log-schema.md: {missing}"


def test_the_schema_documents_a_type_for_each_field() -> None:
    fields = documented_fields()
    assert fields["attempt"] == "integer"
    assert fields["duration_ms"] == "number"
    assert fields["settings"] == "object"
    assert {"timestamp", "level", "event", "role", "message_id", "from_asid", "to_asid"} <= set(
        fields
    )
