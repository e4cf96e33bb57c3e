"""The built-in interaction catalogue used by generated topologies."""

from __future__ import annotations

from typing import Any

# Retry intervals are shorter than Spine's (PT1M and more) so that a simulation with
# injected faults finishes in seconds; persist durations keep Spine's values.
_RELIABLE = {
    "retries": 2,
    "retry_interval": "PT0.2S",
    "persist_duration": "PT5M",
    "ack_requested": "always",
    "duplicate_elimination": "always",
}
_EXPRESS = {
    "retries": 2,
    "retry_interval": "PT0.2S",
    "persist_duration": "PT4M",
    "ack_requested": "never",
    "duplicate_elimination": "never",
    "sync_reply_mode": "MSHSignalsOnly",
}


def _forward(description: str) -> dict[str, Any]:
    return {
        "service": "urn:nhs:names:services:gp2gp",
        "pattern": "forward-reliable",
        "description": description,
        "reliability": {**_RELIABLE, "sync_reply_mode": "None"},
    }


CATALOGUE: dict[str, dict[str, Any]] = {
    "RCMR_IN010000UK05": _forward("GP2GP EHR request"),
    "RCMR_IN030000UK06": _forward("GP2GP EHR extract"),
    "COPC_IN000001UK01": _forward("GP2GP common content: large message fragment"),
    "MCCI_IN010000UK13": _forward("HL7 application acknowledgement"),
    "REPC_IN150016UK05": {
        "service": "urn:nhs:names:services:psis",
        "pattern": "async-reliable",
        "description": "SCR GP summary upload",
        "reliability": {**_RELIABLE, "sync_reply_mode": "MSHSignalsOnly"},
    },
    "QUPC_IN160101UK05": {
        "service": "urn:nhs:names:services:psisquery",
        "pattern": "async-express",
        "sync_async": True,
        "description": "SCR document list request",
        "reliability": _EXPRESS,
        "reply": "QUPC_IN160102UK05",
    },
    "QUPC_IN160102UK05": {
        "service": "urn:nhs:names:services:psisquery",
        "pattern": "async-express",
        "description": "SCR document list response (Spine's reply to QUPC_IN160101UK05)",
        "reliability": _EXPRESS,
    },
}

# Spine itself, for its own services (the SCR): the party an SCR query goes to when the
# request names no ods-code, as the NHS adaptor defaults to MHS_SPINE_ORG_CODE.
SPINE: dict[str, Any] = {
    "name": "Spine",
    "ods_code": "YES",
    "asid": "990000000806",
    "party_key": "YES-0000806",
    "interactions": ["REPC_IN150016UK05", "QUPC_IN160101UK05", "QUPC_IN160102UK05"],
}
