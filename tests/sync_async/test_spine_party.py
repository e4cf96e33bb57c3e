"""Spine as a party of the directory: found like any system, needing no agreement, answering
for its own services; and its reply, built as Spine's would be."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mhs.directory import Directory, generate_topology, load_topology, parse_topology
from mhs.directory.generate import topology_yaml
from mhs.directory.loader import TopologyError
from mhs.ebxml import MessageHeader, extract_device_asids, parse_message, timestamp_now
from mhs.ids import new_id
from mhs.spine.responders import DEFAULT_NHS_NUMBER, Asked
from mhs.spine.service import spine_reply

SPINE_ASID = "990000000806"


def test_the_default_topology_has_spine_found_by_asid_ods_and_party_key() -> None:
    directory = load_topology()
    spine = directory.spine
    assert spine is not None
    assert (spine.ods_code, spine.party_key, spine.asid) == ("YES", "YES-0000806", SPINE_ASID)
    assert spine.spine
    assert directory.by_asid(SPINE_ASID) is spine
    assert directory.recipient("YES", "QUPC_IN160101UK05") is spine
    assert directory.by_party_key("YES-0000806") == (spine,)
    # Not one of the practices' systems: no queue, no inbound MHS, not in generated traffic.
    assert spine not in list(directory.parties)
    assert len(list(directory.parties)) == 40
    assert spine.accredited_for("QUPC_IN160101UK05")
    assert not spine.accredited_for("RCMR_IN010000UK05")
    # Spine's own services need no data sharing agreement; practices across regions do.
    assert directory.has_agreement("A80009", "YES")
    assert not directory.has_agreement("A80001", "A80009")
    query = directory.interaction("QUPC_IN160101UK05")
    assert query is not None
    assert query.reply == "QUPC_IN160102UK05"


def _raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(topology_yaml(generate_topology(4, 2)))
    raw["spine"].update(changes)
    return raw


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"asid": "918000000001"}, "spine: ASID 918000000001 is already used by datacentre/"),
        ({"party_key": "A80001-0000001"}, "spine: party key A80001-0000001 is already used"),
        ({"ods_code": "A80002"}, "spine: ODS code A80002 is also a practice's"),
        ({"interactions": ["NOPE_IN000000UK01"]}, "spine: unknown interaction 'NOPE_IN000000UK01'"),
    ],
)
def test_a_bad_spine_entry_is_refused_saying_why(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(TopologyError, match=problem):
        parse_topology(_raw(**changes), "t.yaml")


def test_a_reply_must_be_an_interaction_of_the_catalogue() -> None:
    raw = _raw()
    raw["interactions"] = {
        "QUPC_IN160101UK05": {
            "service": "urn:nhs:names:services:psisquery",
            "pattern": "async-express",
            "reply": "QUPC_IN999999UK01",
        }
    }
    with pytest.raises(TopologyError, match="reply: unknown interaction 'QUPC_IN999999UK01'"):
        parse_topology(raw, "t.yaml")


def test_a_topology_without_spine_still_loads() -> None:
    raw = _raw()
    del raw["spine"]
    directory = Directory(parse_topology(raw, "t.yaml"))
    assert directory.spine is None
    assert directory.recipient("YES", "QUPC_IN160101UK05") is None


def test_spines_reply_answers_the_request_from_spine_to_the_sender() -> None:
    directory = load_topology()
    spine, sender = directory.spine, directory.by_asid("918000000001")
    assert spine is not None
    assert sender is not None
    reply_interaction = directory.interaction("QUPC_IN160102UK05")
    assert reply_interaction is not None
    request = MessageHeader(
        from_party_id=sender.party_key,
        to_party_id=spine.party_key,
        cpa_id=spine.cpa_id,
        conversation_id=new_id(),
        service="urn:nhs:names:services:psisquery",
        action="QUPC_IN160101UK05",
        message_id=new_id(),
        timestamp=timestamp_now(),
        sync_reply=True,
    )
    reply_id = new_id()
    asked = Asked(request.message_id, DEFAULT_NHS_NUMBER, request.action)
    reply = spine_reply(
        request,
        asked,
        "QUPC_IN160102UK05",
        reply_interaction,
        message_id=reply_id,
        spine=spine,
        sender=sender,
    )
    message = parse_message(reply.headers["Content-Type"], reply.body)
    header = message.header
    assert (header.from_party_id, header.to_party_id) == ("YES-0000806", sender.party_key)
    assert header.ref_to_message_id == request.message_id
    assert header.conversation_id == request.conversation_id
    assert (header.action, header.message_id, header.cpa_id) == (
        "QUPC_IN160102UK05",
        reply_id,
        sender.cpa_id,
    )
    # Express: SyncReply, no AckRequested, no DuplicateElimination.
    assert (header.sync_reply, header.ack_requested, header.duplicate_elimination) == (
        True,
        False,
        False,
    )
    assert message.payload is not None
    assert extract_device_asids(message.payload) == (SPINE_ASID, sender.asid)
    # The document list is about the patient the request named (here none: a test number).
    assert "<PSISDocumentList" in message.payload
    assert f'root="2.16.840.1.113883.2.1.4.1" extension="{DEFAULT_NHS_NUMBER}"' in message.payload
    assert (reply.headers["Ssp-From"], reply.headers["Ssp-To"]) == (SPINE_ASID, sender.asid)
