"""The figures of publishes whose confirm was lost (the broker may have queued the
message) and of the flagged copies that followed: kept apart from metrics.py's tables,
which :class:`mhs.observe.metrics.RoleMetrics` extends with these."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from mhs.observe.events import Event
from mhs.observe.series import Counter, EventFigures

EventDict = MutableMapping[str, Any]


def declare_unconfirmed(figures: EventFigures) -> dict[str, Callable[[EventDict], None]]:
    """Add the counters to ``figures``; the handlers of the events that move them."""
    unconfirmed = figures.add(
        Counter(
            "mhs_publishes_unconfirmed",
            "Publishes whose confirm was lost: the message may or may not be queued",
            (),
        )
    )
    flagged = figures.add(
        Counter(
            "mhs_inbound_possible_duplicates",
            "Copies delivered flagged mhs-possible-duplicate (an earlier publish was unconfirmed)",
            ("interaction_id",),
        )
    )

    def count_flagged(event: EventDict) -> None:
        flagged.inc((str(event.get("interaction_id") or ""),))

    return {
        Event.MESSAGE_PUBLISH_UNCONFIRMED: lambda _: unconfirmed.inc(()),
        Event.INBOUND_PUBLISH_UNCONFIRMED: lambda _: unconfirmed.inc(()),
        Event.INBOUND_POSSIBLE_DUPLICATE: count_flagged,
    }
