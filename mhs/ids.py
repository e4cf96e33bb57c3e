"""Identifier formats: ASIDs, message ids and the like."""

from __future__ import annotations

import re
import uuid

# ASCII only: str patterns match any Unicode digit with \d, and an ASID is 0-9.
ASID_RE = re.compile(r"[0-9]{12}")
UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def is_asid(value: str) -> bool:
    return ASID_RE.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    return UUID_RE.fullmatch(value) is not None


def new_id() -> str:
    """An upper-case UUID4, as Spine writes message and conversation ids."""
    return str(uuid.uuid4()).upper()
