"""A chaos run's counts: how each accepted message ended, what the roles say they did
about the faults, and whether the run held."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from mhs.chaos.cluster import ChaosCluster
from mhs.simulate.tally import Tally


def summarise(message_ids: Iterable[str], tally: Tally, expected: dict[str, str]) -> dict[str, Any]:
    """Counts over ``message_ids``: how each accepted one ended, and what went wrong."""
    counts: Counter[str] = Counter()
    for message_id in message_ids:
        if message_id not in tally.accepted:
            counts["not_accepted"] += 1
            counts["arrived_though_not_accepted"] += int(message_id in tally.arrivals)
            continue
        counts["accepted"] += 1
        arrivals = tally.arrivals[message_id]
        notices = tally.notices.get(message_id, [])
        if arrivals:
            ending = "delivered"
            counts["duplicates"] += int(tally.unflagged_duplicate(message_id))
            counts["flagged_duplicates"] += int(tally.flagged_duplicate(message_id))
            counts["flagged_only_copy"] += int(arrivals == 1 and tally.flagged[message_id] == 1)
            counts["delivered_and_notified"] += int(bool(notices))
        elif notices:
            ending = notices[0]
            counts["duplicate_notices"] += int(len(notices) > 1)
        else:
            ending = "lost"
        counts[ending] += 1
        counts["unexpected_outcomes"] += int(ending not in ("lost", expected.get(message_id)))
    keys = ("accepted", "delivered", "rejected", "dead-lettered", "expired", "lost",
            "duplicates", "flagged_duplicates", "flagged_only_copy", "not_accepted",
            "unexpected_outcomes", "delivered_and_notified", "duplicate_notices",
            "arrived_though_not_accepted")  # fmt: skip
    return {key.replace("-", "_"): counts[key] for key in keys}


def observed(cluster: ChaosCluster) -> dict[str, Any]:
    """What the roles' logs say they did about the faults."""
    proxy = Counter(
        f"{e.get('kind')}-{e.get('status') if e.get('kind') == 'http-status' else e.get('code')}"
        if e.get("kind") in ("http-status", "soap-fault")
        else str(e.get("kind"))
        for e in cluster.log_events("spine-proxy")
        if e.get("event") == "proxy.fault_injected"
    )
    workers = Counter(str(e.get("event")) for e in cluster.log_events("worker"))
    delayed = sum(
        1
        for e in cluster.log_events("worker")
        if e.get("event") == "delivery.retry_scheduled" and e.get("queue")
    )
    inbound = Counter(str(e.get("event")) for e in cluster.log_events("inbound"))
    return {
        "proxy_faults_injected": dict(proxy),
        "deliveries_resumed_after_a_crash_or_lost_link": workers["delivery.resumed"],
        "retries_in_worker": workers["delivery.retry_scheduled"] - delayed,
        "retries_through_delay_queues": delayed,
        "duplicates_dropped_at_inbound": inbound["inbound.duplicate_dropped"],
        "copies_told_to_retry_while_another_was_publishing": inbound[
            "inbound.duplicate_in_progress"
        ],
        "claims_not_settled": inbound["inbound.claim_not_settled"],
        "publishes_unconfirmed_at_inbound": inbound["inbound.publish_unconfirmed"],
        "publishes_unconfirmed_at_outbound": Counter(
            str(e.get("event")) for e in cluster.log_events("outbound")
        )["message.publish_unconfirmed"],
    }


def succeeded(summary: dict[str, Any]) -> bool:
    """Nothing lost, nothing delivered twice unflagged, every accepted message accounted
    for. Flagged duplicates (``mhs-possible-duplicate``) are reported, not failures."""
    ended = sum(summary[k] for k in ("delivered", "rejected", "dead_lettered", "expired"))
    return bool(
        summary["lost"] == 0
        and summary["duplicates"] == 0
        and summary["accepted"] == ended
        and summary["not_accepted"] == 0
    )
