"""The built-in interaction catalogue (interactions.yaml) every topology starts from, and
each pattern's default reliability settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
}

PATTERN_RELIABILITY: dict[str, dict[str, Any]] = {
    "async-express": {**_EXPRESS, "sync_reply_mode": "MSHSignalsOnly"},
    "async-reliable": {**_RELIABLE, "sync_reply_mode": "MSHSignalsOnly"},
    "forward-reliable": {**_RELIABLE, "sync_reply_mode": "None"},
    "forward-express": {**_EXPRESS, "sync_reply_mode": "None"},
    # A sync request is one SOAP exchange, answered or not; it is never queued or retried.
    "sync": {**_EXPRESS, "retries": 0, "sync_reply_mode": "None"},
}

CATALOGUE: dict[str, dict[str, Any]] = yaml.safe_load(
    Path(__file__).with_name("interactions.yaml").read_text()
)

# Spine itself, for its own services: the party a message goes to when the request names
# no ods-code, as the NHS adaptor defaults to MHS_SPINE_ORG_CODE.
SPINE: dict[str, Any] = {
    "name": "Spine",
    "ods_code": "YES",
    "asid": "990000000806",
    "party_key": "YES-0000806",
    # Spine receives its own services, not the messages practices exchange through it.
    "interactions": ["*", "!RCMR_IN010000UK05", "!RCMR_IN030000UK06", "!COPC_IN000001UK01"],
}


def set_reliability(raw: dict[str, Any], interaction_id: str, **rules: Any) -> None:
    """Change ``interaction_id``'s reliability in the raw topology ``raw``: its own entry
    there, or else the catalogue's, with ``rules`` over the attributes it has."""
    interactions = raw.setdefault("interactions", {})
    entry = interactions.get(interaction_id) or CATALOGUE[interaction_id]
    reliability = entry.get("reliability") or PATTERN_RELIABILITY[entry["pattern"]]
    interactions[interaction_id] = {**entry, "reliability": {**reliability, **rules}}
