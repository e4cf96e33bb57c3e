"""``mhs simulate --topology-kind``: GP Connect traffic from each consumer kind of the
packaged topology through real roles on RabbitMQ, counted per kind against the directory
and the provider's audit trail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import typer

from mhs.cli.simulate_kinds import chosen_kinds
from mhs.directory import load_topology
from mhs.settings import Settings
from mhs.simulate.kind_plan import KINDS, OUTSIDER, plan_kinds
from mhs.simulate.kind_run import _Sent, _tally, kinds_succeeded, simulate_kinds

FOT = "FOT_CHECK_FAILED_MESSAGESENDER_<ASID>_MESSAGERECEIVER_<ASID> (403)"


@pytest.mark.rabbitmq
async def test_every_kind_is_allowed_refused_and_audited_as_its_originating_organisation(
    rabbitmq_url: str, unique: str
) -> None:
    settings = Settings(broker_url=rabbitmq_url, queue_prefix=f"test-{unique}.")
    summary = await simulate_kinds(settings, load_topology(), KINDS)
    assert kinds_succeeded(summary), summary
    # Every provider asked was found in the SDS simulator first (24 practices, 2 interactions).
    assert (summary["sds_lookups"], summary["sds_unanswered"]) == (48, 0)
    kinds: dict[str, Any] = summary["kinds"]
    # (sent, accepted): the datacentre's first four practices to the other 23 or 24; the
    # CMA, the TIE's three systems and the portals' four instances to all 24 providers, the
    # portals' for each member and one outsider too. Accepted: the pairs that agree.
    counts = {kind: (row["sent"], row["accepted"]) for kind, row in kinds.items()}
    assert counts == {"mhs": (92, 28), "cma": (24, 1), "tie": (72, 3), "portal": (384, 6)}
    # Messaging too: each consumer system queried PDS through Spine (sync), and each answer
    # came back to the very system that asked (the TIE's three, the portals' four).
    pds = {kind: row["pds_queries"] for kind, row in kinds.items()}
    assert pds == {
        kind: {"sent": n, "answered": n, "answered_to_sender": n}
        for kind, n in (("mhs", 4), ("cma", 1), ("tie", 3), ("portal", 4))
    }
    for row in kinds.values():
        assert row["audited"] == row["accepted"]
        assert row["wrong_originating_organisation"] == 0
        assert row["refused"] == row["sent"] - row["accepted"]
    assert kinds["cma"]["refusal_reasons"] == {FOT: 23}
    assert kinds["portal"]["refusal_reasons"] == {
        "outbound MHS: ACCESS_DENIED (another organisation's ASID) (403)": 144,
        FOT: 138,
        "outbound MHS: ACCESS_DENIED (not a participant of the portal) (403)": 96,
    }


def test_an_audit_entry_naming_the_wrong_organisation_or_practitioner_is_counted() -> None:
    shots = [s for s in plan_kinds(load_topology(), ("portal",)) if s.expect == "accepted"]
    sent = [_Sent(shot, f"trace-{n}", f"SIM{n:06d}", 200, None) for n, shot in enumerate(shots)]
    audit: dict[str, dict[str, Any]] = {
        item.trace_id: {
            "trace_id": item.trace_id,
            "organisation": {"ods_code": item.shot.originating},
            "practitioner": {"sds_user_id": item.user_id},
        }
        for item in sent
    }
    assert _tally(sent, audit)["portal"].wrong_origin == 0
    assert sent[1].shot.originating == "P80002"  # the host-rule portal for a participant
    audit["trace-1"]["organisation"]["ods_code"] = "P80001"  # the host, not the requester
    audit["trace-0"]["practitioner"]["sds_user_id"] = "SOMEONE"
    del audit["trace-2"]
    tally = _tally(sent, audit)["portal"]
    assert (tally.wrong_origin, tally.audited, tally.accepted) == (2, len(sent) - 1, len(sent))
    summary = {"kinds": {"portal": tally.as_dict()}}
    assert not kinds_succeeded(summary)


def test_a_pds_answer_that_did_not_reach_the_system_that_asked_fails_the_run() -> None:
    row = {
        "unexpected_outcomes": 0,
        "wrong_originating_organisation": 0,
        "audited": 1,
        "accepted": 1,
        "pds_queries": {"sent": 3, "answered": 3, "answered_to_sender": 3},
    }
    assert kinds_succeeded({"kinds": {"tie": row}})
    row["pds_queries"] = {"sent": 3, "answered": 3, "answered_to_sender": 2}
    assert not kinds_succeeded({"kinds": {"tie": row}})


def test_the_plan_expects_what_the_directory_says() -> None:
    shots = plan_kinds(load_topology())
    portal = [s for s in shots if s.kind == "portal"]
    assert {s.expect for s in portal if s.named == OUTSIDER} == {"refused"}
    host_rule = [s for s in portal if s.sender.asid == "958000000001"]
    allowed = {(s.named, s.provider.ods_code) for s in host_rule if s.expect == "accepted"}
    assert allowed == {(None, "A80003"), ("P80002", "A80003"), ("P80003", "A80003")}
    unexpected = replace(shots[0], expect="refused")
    sent = [_Sent(unexpected, "t", "u", 200, None)]
    assert _tally(sent, {})[unexpected.kind].unexpected == 1


def test_a_kind_not_known_is_refused_naming_the_choices() -> None:
    assert chosen_kinds("all") == KINDS
    assert chosen_kinds("tie") == ("tie",)
    with pytest.raises(typer.BadParameter, match="'hub' is not one of mhs, cma, tie, portal, all"):
        chosen_kinds("hub")
    with pytest.raises(ValueError, match="unknown topology kind 'hub'"):
        plan_kinds(load_topology(), ("hub",))
