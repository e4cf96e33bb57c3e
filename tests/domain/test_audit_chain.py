"""The provider's audit trail on its own: the hash chain, what breaks it, and the file."""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path

import orjson
import pytest

from mhs.provider.audit import GENESIS, AuditDraft, AuditOutcome, ChainHead, entry_hash, verify
from mhs.provider.audit_file import AuditFile, AuditFileError, read_lines
from mhs.provider.audit_request import draft_for
from mhs.provider.provider import ProviderRequest
from mhs.ssp.consumer_jwt import consumer_jwt

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _draft(n: int) -> AuditDraft:
    return AuditDraft(
        at=f"2026-01-01T00:00:{n:02d}.000+00:00",
        consumer_asid="918000000001",
        method="GET",
        path=f"/A80002/STU3/1/gpconnect/metadata?n={n}",
        outcome=AuditOutcome(status=200),
    )


def _written(tmp_path: Path, count: int = 5) -> tuple[Path, list[bytes]]:
    path = tmp_path / "trail.audit.jsonl"
    file = AuditFile(path)
    assert file.open() == ChainHead()
    file.append([_draft(n) for n in range(1, count + 1)])
    file.close()
    return path, list(read_lines(path))


def test_entries_chain_from_the_genesis_and_the_chain_holds(tmp_path: Path) -> None:
    path, lines = _written(tmp_path)
    entries = [orjson.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == before["hash"] == entry_hash(before)
    report = verify(lines)
    assert report.broken is None
    assert report.head == ChainHead(5, entries[-1]["hash"])
    assert AuditFile(path).open() == report.head  # a reopened file continues from there


def _edit(lines: list[bytes], index: int, *, rehash: bool) -> list[bytes]:
    fields = orjson.loads(lines[index])
    fields["organisation"] = {"ods_code": "A89999", "name": "Someone else"}
    if rehash:
        fields["hash"] = entry_hash(fields)
    return [*lines[:index], orjson.dumps(fields), *lines[index + 1 :]]


@pytest.mark.parametrize(
    ("tamper", "line", "seq", "says"),
    [
        (lambda ls: _edit(ls, 2, rehash=False), 3, 3, "the entry was edited"),
        (lambda ls: _edit(ls, 2, rehash=True), 4, 4, "does not chain from entry 3"),
        (lambda ls: [*ls[:2], *ls[3:]], 3, 4, "entry 3 before it is missing"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, 3, "entry 2 before it is missing"),
        (lambda ls: [*ls[:3], ls[1], *ls[3:]], 4, 2, "comes after entry 3"),
        (lambda ls: [*ls[:1], b'{"seq": 2', *ls[2:]], 2, None, "not JSON"),
    ],
    ids=["edited", "edited-and-rehashed", "removed", "reordered", "inserted", "damaged"],
)
def test_verify_names_the_first_broken_entry(
    tmp_path: Path, tamper: object, line: int, seq: int | None, says: str
) -> None:
    _, lines = _written(tmp_path)
    report = verify(tamper(lines))  # type: ignore[operator]
    assert report.broken is not None
    assert (report.broken.line, report.broken.seq) == (line, seq)
    assert says in report.broken.reason
    assert report.entries == line - 1


def test_entries_cut_off_the_end_show_only_against_a_head_kept_elsewhere(tmp_path: Path) -> None:
    _, lines = _written(tmp_path)
    head = verify(lines).head
    assert verify(lines[:3]).broken is None
    broken = verify(lines[:3], expect=head).broken
    assert broken is not None
    assert "wrote up to entry 5" in broken.reason
    other = ChainHead(5, "f" * 64)
    broken = verify(lines, expect=other).broken
    assert broken is not None
    assert (broken.line, broken.seq) == (5, 5)


def _append_many(path: Path, count: int) -> None:
    file = AuditFile(path)
    file.open()
    for n in range(count):
        file.append([_draft(n % 60)])
    file.close()


def test_processes_sharing_a_file_extend_one_chain(tmp_path: Path) -> None:
    # Separate processes, as replicas are: without the lock their entries chain from the
    # same head and the chain forks.
    path = tmp_path / "shared.audit.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, 100)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    report = verify(read_lines(path))
    assert report.broken is None
    assert report.entries == 400


def test_a_file_cut_short_mid_write_stops_the_start(tmp_path: Path) -> None:
    path, lines = _written(tmp_path, 2)
    with path.open("ab") as handle:
        handle.write(lines[1][:40])
    with pytest.raises(AuditFileError) as raised:
        AuditFile(path).open()
    message = str(raised.value)
    assert str(path) in message
    assert "a write was cut short" in message
    assert "move the file aside" in message


def test_a_folder_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(AuditFileError) as raised:
        AuditFile(blocker / "audit" / "x.audit.jsonl").open()
    assert "set MHS_AUDIT_DIR to a writable folder" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_entry_names_who_asked_as_the_jwt_sent_it() -> None:
    token = consumer_jwt(audience="x", ods_code="A80001", user_id="G13579")
    body = orjson.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patientNHSNumber", "valueIdentifier": {"system": NHS, "value": "123"}}
            ],
        }
    )
    request = ProviderRequest(
        "POST",
        "/A80002/STU3/1/gpconnect/structured/fhir/Patient/$gpc.getstructuredrecord",
        "",
        {"Authorization": f"Bearer {token}", "Ssp-From": "918000000001"},
        body,
    )
    draft = draft_for(request, at=0.0, status=422)
    assert draft.at == "1970-01-01T00:00:00.000+00:00"
    assert draft.consumer_asid == "918000000001"
    assert draft.patient == "123"  # named, though it is no NHS number
    assert draft.organisation is not None
    assert (draft.organisation.ods_code, draft.organisation.name) == (
        "A80001",
        "Requesting practice",
    )
    assert draft.practitioner is not None
    assert draft.practitioner.sds_user_id == "G13579"
    assert draft.practitioner.sds_role_profile_id == "UNK"
    assert draft.practitioner.name == "Dr Test User"
    assert draft.device is not None
    assert (draft.device.value, draft.device.model) == ("cli", "mhs-simulator")
    assert (draft.reason_for_request, draft.requested_scope) == ("directcare", "patient/*.read")

    unreadable = ProviderRequest("GET", "/x", f"identifier={NHS}|9", {"Authorization": "Bearer a"})
    draft = draft_for(unreadable, at=0.0, status=400)
    assert (draft.organisation, draft.practitioner, draft.device) == (None, None, None)
    assert draft.patient == "9"

    hostile = ProviderRequest("GET", "/x", "", {"Ssp-From": "9" * 10_000})
    assert draft_for(hostile, at=0.0, status=400).consumer_asid == "9" * 256
