"""The provider's audit trail: one entry per request it answered, chained by hashes.

Each stored entry carries ``prev``, the hash of the entry before it (``GENESIS`` for the
first), and ``hash``, the SHA-256 of its own canonical encoding (orjson, keys sorted,
``hash`` left out, ``prev`` kept in). Editing, removing, inserting or reordering an entry
therefore breaks a link that ``verify`` names. Removing entries from the end leaves a
shorter chain that is still whole: only a chain head kept elsewhere (``verify(expect=)``)
shows that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

GENESIS = "0" * 64


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AuditOrganisation(_Part):
    """``requesting_organization`` as the JWT sent it."""

    ods_code: str | None = None
    name: str | None = None


class AuditPractitioner(_Part):
    """``requesting_practitioner`` as the JWT sent it: its ids, name and role."""

    id: str | None = None
    sds_user_id: str | None = None
    sds_role_profile_id: str | None = None
    name: str | None = None


class AuditDevice(_Part):
    """``requesting_device`` as the JWT sent it."""

    system: str | None = None
    value: str | None = None
    model: str | None = None
    version: str | None = None


class AuditOutcome(_Part):
    """What the provider answered: HTTP status, and the OperationOutcome's code if refused."""

    status: int
    code: str | None = None
    detail: str | None = None


class AuditDraft(_Part):
    """What one request was and how it ended: an entry before it is placed in the chain."""

    at: str
    trace_id: str | None = None
    consumer_asid: str | None = None
    provider_asid: str | None = None
    provider_ods: str | None = None
    method: str
    path: str
    interaction: str | None = None
    patient: str | None = None
    organisation: AuditOrganisation | None = None
    practitioner: AuditPractitioner | None = None
    device: AuditDevice | None = None
    reason_for_request: str | None = None
    requested_scope: str | None = None
    outcome: AuditOutcome


class AuditEntry(AuditDraft):
    """An entry in the chain: its place (``seq``, from 1), the hash before it and its own."""

    seq: int
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry's place and hash (``seq`` 0 and ``GENESIS`` for an empty chain)."""

    seq: int = 0
    hash: str = GENESIS


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place the chain does not hold: the line (from 1) and what is wrong."""

    line: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        entry = f"entry {self.seq}" if self.seq is not None else "an entry"
        return f"line {self.line} ({entry}): {self.reason}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What ``verify`` found: how many entries held, the head they reach, the first break."""

    entries: int
    head: ChainHead
    broken: ChainBreak | None


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of an entry's canonical encoding, its ``hash`` field left out."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def seal(draft: AuditDraft, head: ChainHead) -> dict[str, Any]:
    """``draft`` as the entry after ``head``: the JSON-ready fields, ``hash`` included."""
    entry = {**draft.model_dump(mode="json"), "seq": head.seq + 1, "prev": head.hash}
    entry["hash"] = entry_hash(entry)
    return entry


def encode(entry: Mapping[str, Any]) -> bytes:
    """One JSON Lines line of a sealed entry."""
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> dict[str, Any]:
    """The fields of one stored line; ValueError if it is not a whole audit entry."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    try:
        # From JSON, so strict mode takes nested objects as the models they are.
        AuditEntry.model_validate_json(line)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        raise ValueError(f"not an audit entry ({where}: {first['msg']})") from None
    assert isinstance(entry, dict)  # the model above accepts only an object
    return entry


def verify(
    lines: Iterable[bytes | Mapping[str, Any]],
    *,
    start: ChainHead | None = None,
    expect: ChainHead | None = None,
) -> ChainReport:
    """Check the chain entry by entry from ``start`` (default: the genesis); stop at the
    first break. ``lines`` are stored lines or already-decoded entries. ``expect``, a head
    recorded elsewhere (the provider's last write), must be in the chain: that catches
    entries cut off the end.
    """
    head = start or ChainHead()
    count = 0
    for number, item in enumerate(lines, start=1):
        try:
            entry = decode(item) if isinstance(item, bytes) else _checked(item)
        except ValueError as error:
            return ChainReport(count, head, ChainBreak(number, None, str(error)))
        problem = _link_problem(entry, head) or _unexpected(entry, expect)
        if problem is not None:
            return ChainReport(count, head, ChainBreak(number, entry["seq"], problem))
        head = ChainHead(entry["seq"], entry["hash"])
        count += 1
    if expect is not None and head.seq < expect.seq:
        reason = (
            f"the chain ends at entry {head.seq}, but the provider wrote up to entry "
            f"{expect.seq}: entries were removed from the end"
        )
        return ChainReport(count, head, ChainBreak(count + 1, None, reason))
    return ChainReport(count, head, None)


def _unexpected(entry: Mapping[str, Any], expect: ChainHead | None) -> str | None:
    if expect is None or entry["seq"] != expect.seq or entry["hash"] == expect.hash:
        return None
    return f"it is not the entry {expect.seq} the provider wrote (hash {expect.hash[:12]}…)"


def _checked(entry: Mapping[str, Any]) -> dict[str, Any]:
    return decode(orjson.dumps(dict(entry)))


def _link_problem(entry: Mapping[str, Any], head: ChainHead) -> str | None:
    seq = entry["seq"]
    if entry_hash(entry) != entry["hash"]:
        return "its content does not match its hash: the entry was edited"
    if seq != head.seq + 1:
        if seq <= head.seq:
            return f"it comes after entry {head.seq}: entries were reordered or inserted"
        missing = f"{head.seq + 1}" if seq == head.seq + 2 else f"{head.seq + 1}-{seq - 1}"
        return f"entry {missing} before it is missing: removed, or the entries were reordered"
    if entry["prev"] != head.hash:
        before = f"entry {head.seq}" if head.seq else "the genesis"
        return (
            f"it does not chain from {before}: {before} was edited (its hash recomputed) or "
            "replaced, or this entry was inserted"
        )
    return None


def shown(line: bytes) -> Any:
    """One line of an audit file as it is shown: its entry, or a line that is not JSON as
    text, so that verification names it."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"damaged_line": line.decode(errors="replace")}
