"""Timelines from stored steps (mhs.observe.status) and their recording in batches
(mhs.observe.recorder), on the in-process store."""

from __future__ import annotations

import io
from typing import Any

import orjson
import structlog
from structlog.testing import capture_logs

from mhs.ids import new_id
from mhs.observe import recorder as recorders
from mhs.observe.events import Event
from mhs.observe.logs import configure_logging, get_logger
from mhs.observe.recorder import StatusRecorder
from mhs.observe.status import MAX_STEPS, build_timeline, encode_step, status_name
from mhs.state import StateError
from mhs.state.factory import create_state_store
from mhs.state.memory import MemoryStateStore

A, B, C = "918000000001", "918000000002", "918000000003"
ID = "6F1C0E5A-0000-4000-8000-000000000001"
PARTIES = {"from_asid": A, "to_asid": B, "interaction_id": "RCMR_IN010000UK05"}


def step(at: float, event: str, role: str = "worker", **fields: Any) -> bytes:
    return encode_step(at, event, {"role": role, "message_id": ID, **fields})


def test_steps_come_back_in_time_order_with_the_senders_parties() -> None:
    timeline = build_timeline(
        ID.lower(),
        [
            step(
                3.0, Event.INBOUND_DELIVERED, "inbound", queue="q", outcome="delivered", to_asid=B
            ),
            step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES, from_ods="A80001"),
            step(2.0, Event.DELIVERY_ATTEMPT, attempt=1, outcome="accepted", **PARTIES),
            step(4.0, Event.PROXY_FORWARDED, "spine-proxy", status=200, **PARTIES),
        ],
    )
    assert timeline is not None
    shown = timeline.public()
    assert shown["message_id"] == ID
    assert [s["event"] for s in shown["steps"]] == [
        "message.accepted",
        "delivery.attempt",
        "inbound.delivered_to_instance",
        "proxy.forwarded",
    ]
    assert shown["steps"][0]["at"] == "1970-01-01T00:00:01.000Z"
    assert (shown["from_asid"], shown["to_asid"], shown["from_ods"]) == (A, B, "A80001")
    # Delivered to the instance, whatever the proxy logged after that.
    assert shown["state"] == "delivered"
    assert shown["steps"][1] == {
        "at": "1970-01-01T00:00:02.000Z",
        "role": "worker",
        "event": "delivery.attempt",
        "attempt": 1,
        "outcome": "accepted",
    }


def test_only_the_sender_and_recipient_may_see_it() -> None:
    timeline = build_timeline(ID, [step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES)])
    assert timeline is not None
    assert timeline.visible_to(A)
    assert timeline.visible_to(B)
    assert not timeline.visible_to(C)
    assert build_timeline(ID, []) is None


def test_another_sender_reusing_the_id_is_left_out() -> None:
    timeline = build_timeline(
        ID,
        [
            step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES),
            step(2.0, Event.MESSAGE_ACCEPTED, "outbound", from_asid=C, to_asid=B),
            step(3.0, Event.DELIVERY_ATTEMPT, from_asid=C, to_asid=B, attempt=1),
        ],
    )
    assert timeline is not None
    assert [s["event"] for s in timeline.public()["steps"]] == ["message.accepted"]
    assert not timeline.visible_to(C)


def test_a_step_written_twice_counts_once_and_a_broken_one_not_at_all() -> None:
    accepted = step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES)
    timeline = build_timeline(ID, [accepted, accepted, b"not json", b'{"at": "x"}'])
    assert timeline is not None
    assert len(timeline.steps) == 1


def test_final_states_win_until_the_message_starts_again() -> None:
    def state(*steps: bytes) -> str:
        timeline = build_timeline(ID, steps)
        assert timeline is not None
        return timeline.state

    accepted = step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES)
    dead = step(3.0, Event.DELIVERY_DEAD_LETTERED, outcome="expired", reason="persist")
    assert state(accepted) == "accepted"
    assert state(accepted, step(2.0, Event.DELIVERY_RETRY_SCHEDULED)) == "waiting-to-retry"
    assert state(accepted, dead) == "expired"
    # Delivered, then reported failed (its acknowledgement was lost): the sender was told.
    delivered = step(2.0, Event.INBOUND_DELIVERED, "inbound")
    assert state(accepted, delivered, dead) == "expired"
    # Replayed from the dead-letter queue, then delivered.
    again = step(4.0, Event.DELIVERY_ATTEMPT, attempt=1, outcome="accepted")
    assert state(accepted, dead, again) == "sending"
    assert state(accepted, dead, again, step(5.0, Event.INBOUND_DELIVERED, "inbound")) == (
        "delivered"
    )
    refused = step(2.0, Event.MESSAGE_REFUSED, "outbound", status=503)
    assert state(accepted, refused) == "refused"
    assert state(accepted, refused, step(3.0, Event.MESSAGE_ACCEPTED, "outbound")) == "accepted"


def test_spines_reply_is_part_of_the_request_timeline() -> None:
    reply = new_id()
    timeline = build_timeline(
        ID,
        [
            step(1.0, Event.MESSAGE_ACCEPTED, "outbound", **PARTIES),
            step(2.0, Event.PROXY_ANSWERED_AS_SPINE, "spine-proxy", status=202, **PARTIES),
            step(
                3.0,
                Event.INBOUND_RECEIVED,
                "inbound",
                inbound_message_id=reply,
                to_asid=A,
                from_asid=B,
                interaction_id="QUPC_IN160102UK05",
            ),
            step(4.0, Event.INBOUND_DELIVERED, "inbound", inbound_message_id=reply, to_asid=A),
        ],
    )
    assert timeline is not None
    shown = timeline.public()
    assert shown["state"] == "replied"
    assert shown["interaction_id"] == "RCMR_IN010000UK05"
    assert shown["steps"][2]["interaction_id"] == "QUPC_IN160102UK05"


def test_a_long_timeline_says_it_was_cut() -> None:
    steps = [step(float(n), Event.DELIVERY_ATTEMPT, attempt=n) for n in range(MAX_STEPS)]
    timeline = build_timeline(ID, steps)
    assert timeline is not None
    assert timeline.truncated


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "role": "worker", "message_id": ID, **PARTIES, **fields}


async def test_the_recorder_writes_steps_in_one_batch_and_skips_other_events() -> None:
    store = MemoryStateStore("t.")
    recorder = StatusRecorder(store, get_logger("worker"), ttl_s=60)
    recorder.observe(_event(Event.DELIVERY_ATTEMPT, attempt=1, outcome="transient"))
    recorder.observe(_event(Event.WORKER_DRAINED, in_flight=0))  # not a step
    recorder.observe({"event": Event.DELIVERY_ATTEMPT, "role": "worker"})  # no message id
    recorder.observe(_event(Event.DELIVERY_ATTEMPT, message_id="other", attempt=1))
    recorder.observe(_event(Event.DELIVERY_ATTEMPT, attempt=2, outcome="accepted"))
    assert await store.read_list(status_name(ID)) == []
    await recorder.flush()
    records = [orjson.loads(r) for r in await store.read_list(status_name(ID))]
    assert [(r["event"], r["attempt"]) for r in records] == [
        ("delivery.attempt", 1),
        ("delivery.attempt", 2),
    ]
    # Who the message is between is written once per message in a batch.
    assert records[0]["from_asid"] == A
    assert "from_asid" not in records[1]
    assert records[1]["interaction_id"] == "RCMR_IN010000UK05"
    assert len(await store.read_list(status_name("other"))) == 1
    remaining = await store.remaining_s(status_name(ID))
    assert remaining is not None
    assert 0 < remaining <= 60


async def test_the_recorder_writes_what_is_left_when_it_stops() -> None:
    store = MemoryStateStore("t.")
    recorder = StatusRecorder(store, get_logger("worker"), ttl_s=60, interval_s=3600)
    recorder.start()
    recorder.observe(_event(Event.DELIVERY_DELIVERED, attempt=1))
    await recorder.stop()
    assert len(await store.read_list(status_name(ID))) == 1


class _Down(MemoryStateStore):
    async def append(self, *_: Any, **__: Any) -> None:
        raise StateError("the state store at redis://x did not answer")


async def test_a_store_that_does_not_answer_costs_steps_not_memory() -> None:
    recorder = StatusRecorder(_Down("t."), get_logger("worker"), ttl_s=60, max_pending=3)
    with capture_logs() as logs:
        for attempt in range(5):
            recorder.observe(_event(Event.DELIVERY_ATTEMPT, attempt=attempt))
        await recorder.flush()
        await recorder.flush()
    # The first three are held for the next write, the two beyond the bound dropped.
    assert [(e["event"], e["records"], e["held"]) for e in logs] == [
        ("status.write_failed", 2, 3),
        ("status.write_failed", 0, 3),
    ]
    assert "did not answer" in logs[0]["reason"]


class _Flaky(MemoryStateStore):
    down = True

    async def append(self, *args: Any, **kwargs: Any) -> None:
        if self.down:
            raise StateError("the state store at redis://x did not answer")
        await super().append(*args, **kwargs)


async def test_steps_held_through_an_outage_are_written_in_order_once_it_ends() -> None:
    store = _Flaky("t.")
    recorder = StatusRecorder(store, get_logger("worker"), ttl_s=60)
    for attempt in range(3):
        recorder.observe(_event(Event.DELIVERY_ATTEMPT, attempt=attempt))
    assert not await recorder.flush()
    recorder.observe(_event(Event.DELIVERY_DELIVERED, attempt=3))
    store.down = False
    assert await recorder.flush()
    steps = await store.read_list(status_name(ID))
    assert [orjson.loads(step)["attempt"] for step in steps] == [0, 1, 2, 3]


async def test_events_the_log_level_drops_are_still_steps() -> None:
    # message.accepted is logged at DEBUG; at the default level (INFO) it is not written,
    # and it is still the first step of the message's timeline.
    prefix = f"t-{new_id()}."
    store = create_state_store(None, prefix=prefix)  # the recorder's (held here: it is weak)
    stream = io.StringIO()
    saved = structlog.get_config()
    await recorders.acquire(
        "outbound", get_logger("outbound"), state_url=None, prefix=prefix, ttl_s=60
    )
    try:
        configure_logging("INFO", "json", stream=stream)
        log = get_logger("outbound")
        log.debug(Event.MESSAGE_ACCEPTED, message_id=ID, **PARTIES)
        log.info(Event.MESSAGE_QUEUED, message_id=ID, outcome="queued", **PARTIES)
    finally:
        structlog.configure(**saved)
        await recorders.release("outbound")  # writes what it holds
    [line] = stream.getvalue().splitlines()
    assert orjson.loads(line)["event"] == "message.queued"
    steps = await store.read_list(status_name(ID))
    assert [orjson.loads(s)["event"] for s in steps] == ["message.accepted", "message.queued"]
