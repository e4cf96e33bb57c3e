"""Loading a topology file, with errors that name the file, the entry and the problem."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from mhs.directory.addresses import LocalAddresses
from mhs.directory.directory import Directory
from mhs.directory.model import Topology

DEFAULT_TOPOLOGY = "default-topology.yaml"
# libyaml's loader (in PyYAML's wheels) reads a 10,000-instance topology in a second or
# two; the pure-Python one took 20 s and left the process 170 MB bigger.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TopologyError(ValueError):
    """The topology file cannot be used."""


def _entry(loc: tuple[int | str, ...], raw: Any) -> str:
    # Turn ("mhs", 0, "instances", 3, "asid") into "mhs[0].instances[3] (Surgery).asid".
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                text += f" ({node['name']})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "top level"


def parse_topology(raw: Any, source: str) -> Topology:
    """Validate already-decoded topology data."""
    try:
        return Topology.model_validate(raw)
    except ValidationError as error:
        raise _problems(error, raw, source) from None


def _problems(error: ValidationError, raw: Any, source: str) -> TopologyError:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{source}: {_entry(tuple(item['loc']), raw)}: {message}")
    return TopologyError("\n".join(problems))


def load_topology(path: Path | None = None, addresses: LocalAddresses | None = None) -> Directory:
    """Load ``path`` (YAML or JSON), or the packaged default when None; its endpoint
    templates are filled from ``addresses`` (default: the default ports on 127.0.0.1)."""
    if path is None:
        text = resources.files("mhs.directory").joinpath(DEFAULT_TOPOLOGY).read_text()
        source = f"<packaged {DEFAULT_TOPOLOGY}>"
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise TopologyError(f"{source}: cannot read: {error.strerror}") from None
    try:
        raw = orjson.loads(text) if source.endswith(".json") else yaml.load(text, _YAML_LOADER)  # noqa: S506
    except (yaml.YAMLError, orjson.JSONDecodeError) as error:
        raise TopologyError(f"{source}: not valid YAML/JSON: {error}") from None
    if not isinstance(raw, dict):
        raise TopologyError(f"{source}: top level: expected a mapping with mhs, interactions")
    try:
        blob = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as error:
        raise TopologyError(f"{source}: holds a value JSON cannot represent: {error}") from None
    # Validated from JSON once the parser's objects are freed, so the directory's own are
    # not scattered among them: at 10,000 instances a role stays ~90 MB smaller.
    del raw, text
    try:
        topology = Topology.model_validate_json(blob)
    except ValidationError as error:
        raise _problems(error, orjson.loads(blob), source) from None
    return Directory(topology, source=source, addresses=addresses)
