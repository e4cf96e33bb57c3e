"""What ``mhs inject`` sends: requests read from files (NHS adaptor JSON bodies for the
outbound MHS, raw ebXML multipart messages for the inbound MHS) or generated between
instances, addressed through the directory."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from lxml import etree

from mhs.directory import Directory, Party
from mhs.ebxml import (
    EBXML_CONTENT_ID,
    EbxmlError,
    extract_device_asids,
    peek_header,
)
from mhs.ebxml.safexml import parse_xml
from mhs.ids import is_asid, new_id
from mhs.simulate.plan import GP2GP, Planned

Target = Literal["outbound", "inbound"]


class InjectError(Exception):
    """A message that cannot even be sent (a file we cannot read or address)."""


@dataclass(frozen=True, slots=True)
class Shot:
    """One request to send, and what to call it in the output."""

    label: str
    target: Target
    body: bytes
    headers: dict[str, str]
    message_id: str | None = None


class Addressing:
    """Finds instances by ASID or ODS code, and the headers a hosted instance sends."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def party(self, key: str, *, hosted: bool = False) -> Party:
        party = self.directory.by_asid(key) if is_asid(key) else None
        if party is None:
            # An ODS code: its hosted system first, as a sender must be one.
            found = sorted(self.directory.by_ods(key), key=lambda p: not p.hosted)
            party = found[0] if found else None
        if party is None:
            raise InjectError(f"{key!r} is not an ASID or ODS code in {self.directory.source}")
        if hosted and not party.hosted:
            raise InjectError(f"{key} is not hosted here: only hosted instances can send")
        return party

    def outbound_headers(
        self, sender: Party, recipient: Party, interaction_id: str, message_id: str
    ) -> dict[str, str]:
        credential = self.directory.credential_for(sender.asid)
        if credential is None:
            raise InjectError(f"{sender.asid} has no credential in {self.directory.source}")
        return {
            "Authorization": f"Bearer {credential}",
            "Interaction-Id": interaction_id,
            "wait-for-response": "false",
            "Message-Id": message_id,
            "ods-code": recipient.ods_code,
            "to-asid": recipient.asid,
            "Content-Type": "application/json",
        }


def _root_name(payload: str) -> str | None:
    try:
        return etree.QName(parse_xml(payload.encode(), "the HL7 payload")).localname
    except (EbxmlError, ValueError):
        return None


def json_shot(
    path: Path,
    raw: bytes,
    addressing: Addressing,
    sender: str | None,
    recipient: str | None,
    interaction: str | None,
) -> Shot:
    """An NHS adaptor request body, addressed by the flags or else by its HL7 wrapper."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InjectError(f"{path}: not JSON: {error}") from None
    payload = body.get("payload") if isinstance(body, dict) else None
    snd = rcv = None
    if isinstance(payload, str):
        try:
            snd, rcv = extract_device_asids(payload)
        except EbxmlError:
            snd = rcv = None
    sender = sender or snd
    recipient = recipient or rcv
    if interaction is None and isinstance(payload, str):
        root = _root_name(payload)
        interaction = root if root and addressing.directory.interaction(root) else None
    missing = [
        what
        for what, value in (("--from", sender), ("--to", recipient), ("--interaction", interaction))
        if not value
    ]
    if missing:
        raise InjectError(
            f"{path}: give {', '.join(missing)} (the payload's HL7 wrapper does not say)"
        )
    assert sender
    assert recipient
    assert interaction
    message_id = new_id()
    headers = addressing.outbound_headers(
        addressing.party(sender, hosted=True), addressing.party(recipient), interaction, message_id
    )
    return Shot(path.name, "outbound", raw, headers, message_id)


def multipart_shot(path: Path, raw: bytes) -> Shot:
    """A raw ebXML multipart message: its HTTP header lines, a blank line and its parts; or
    just its parts, the boundary read from the first line."""
    head, body = b"", raw.lstrip()
    if not body.startswith(b"--"):
        ends = [(i, n) for n in (b"\r\n\r\n", b"\n\n") if (i := raw.find(n)) >= 0]
        if not ends:
            raise InjectError(f"{path}: not JSON and not a multipart message")
        end, separator = min(ends)
        head, body = raw[:end], raw[end + len(separator) :]
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None:
        first = body.split(b"\n", 1)[0].strip()
        if not first.startswith(b"--") or len(first) < 3:
            raise InjectError(
                f"{path}: not JSON and not a multipart message (no Content-Type header line "
                "and no --boundary first line)"
            )
        content_type = (
            f'multipart/related; boundary="{first[2:].decode("latin-1")}"; type="text/xml"; '
            f'start="<{EBXML_CONTENT_ID}>"'
        )
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    try:
        message_id: str | None = peek_header(content_type, body).message_id
    except EbxmlError:
        message_id = None  # sent all the same: what the inbound MHS makes of it is the test
    return Shot(path.name, "inbound", body, {**headers, "Content-Type": content_type}, message_id)


def file_shots(
    paths: Sequence[Path],
    addressing: Addressing,
    sender: str | None,
    recipient: str | None,
    interaction: str | None,
) -> list[Shot]:
    """Every message the files and folders hold, all checked before any is sent."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.iterdir()) if p.is_file() and p.name[0] != ".")
        elif path.is_file():
            files.append(path)
        else:
            raise InjectError(f"{path}: no such file or folder")
    if not files:
        raise InjectError("no files to inject")
    shots = []
    for path in files:
        raw = path.read_bytes()
        if raw.lstrip()[:1] in (b"{", b"["):
            shots.append(json_shot(path, raw, addressing, sender, recipient, interaction))
        else:
            shots.append(multipart_shot(path, raw))
    return shots


def generated_shots(
    addressing: Addressing,
    senders: Sequence[str],
    recipients: Sequence[str],
    interactions: Sequence[str],
    *,
    seed: int,
) -> Iterator[Shot]:
    """An endless stream of messages between the chosen instances. Without recipients, each
    sender writes to hosted instances it shares data with, for interactions both are
    accredited for (the GP2GP ones unless ``interactions`` names others)."""
    directory = addressing.directory
    chosen = [addressing.party(s, hosted=True) for s in senders] or [
        p for p in directory.parties if p.hosted
    ]
    targets = [addressing.party(r) for r in recipients]
    kinds = list(interactions) or [i for i in GP2GP if directory.interaction(i) is not None]
    for interaction in kinds:
        if directory.interaction(interaction) is None:
            raise InjectError(f"unknown interaction {interaction} in {directory.source}")
    pairs = [
        (s, r, i)
        for s in chosen
        for r in (targets or [p for p in directory.parties if p.hosted])
        for i in kinds
        if r.asid != s.asid
        and (
            targets
            or (
                directory.has_agreement(s.ods_code, r.ods_code)
                and s.accredited_for(i)
                and r.accredited_for(i)
            )
        )
    ]
    if not pairs:
        raise InjectError("no sender, recipient and interaction fit together: see --help")
    return _stream(addressing, pairs, seed)


def _stream(
    addressing: Addressing, pairs: list[tuple[Party, Party, str]], seed: int
) -> Iterator[Shot]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic mix, not a secret
    for n in itertools.count(1):
        sender, recipient, interaction = rng.choice(pairs)
        message_id = new_id()
        plan = Planned(message_id, sender, recipient, interaction, "deliver")
        headers = addressing.outbound_headers(sender, recipient, interaction, message_id)
        body = orjson.dumps({"payload": plan.payload()})
        yield Shot(f"#{n} {sender.asid}->{recipient.asid}", "outbound", body, headers, message_id)


@dataclass
class Plan:
    shots: Iterator[Shot]
    total: int | None
    duration_s: float | None
    rate: float | None
    concurrency: int


def plan_shots(
    addressing: Addressing,
    paths: list[Path],
    senders: list[str],
    recipients: list[str],
    interactions: list[str],
    *,
    count: int | None,
    duration: float | None,
    rate: float | None,
    concurrency: int,
    seed: int,
) -> Plan:
    if count is not None and duration is not None:
        raise InjectError("give --count or --duration, not both")
    if not paths:
        shots = generated_shots(addressing, senders, recipients, interactions, seed=seed)
        # Neither --count nor --duration: one message, to see that the path works.
        total = count if count is not None else None if duration is not None else 1
        return Plan(shots, total, duration, rate, concurrency)
    if count is not None or duration is not None:
        raise InjectError("--count and --duration are for generated messages, not files")
    if max(len(senders), len(recipients), len(interactions)) > 1:
        raise InjectError("files take at most one --from, --to and --interaction")
    listed = file_shots(
        paths,
        addressing,
        senders[0] if senders else None,
        recipients[0] if recipients else None,
        interactions[0] if interactions else None,
    )
    return Plan(iter(listed), len(listed), None, rate, concurrency)
