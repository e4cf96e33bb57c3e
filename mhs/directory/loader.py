"""Loading a topology file, with errors that name the file, the entry and the problem."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mhs.directory.directory import Directory
from mhs.directory.model import Topology

DEFAULT_TOPOLOGY = "default-topology.yaml"


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
        problems = []
        for item in error.errors(include_url=False):
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {_entry(tuple(item['loc']), raw)}: {message}")
        raise TopologyError("\n".join(problems)) from None


def load_topology(path: Path | None = None) -> Directory:
    """Load ``path`` (YAML or JSON), or the packaged default when None."""
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
        raw = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise TopologyError(f"{source}: not valid YAML/JSON: {error}") from None
    if not isinstance(raw, dict):
        raise TopologyError(f"{source}: top level: expected a mapping with mhs, interactions")
    return Directory(parse_topology(raw, source), source=source)
