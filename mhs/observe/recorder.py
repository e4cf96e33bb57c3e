"""Recording status timelines: lifecycle log events into the state store, in batches.

:func:`record_status` is a structlog processor that runs beside the metrics' one, before
the log level applies, and hands each event to the recorder of the role that logged it
(found by the ``role`` every role's logger binds), as mhs.observe.metrics does for
metrics. The recorder only keeps the event in memory: a task the role runs
(mhs.roles.common.timeline_ctx) writes what has gathered every ``interval_s`` in one state
store call, and once more as the role stops. So a lifecycle event costs a list append,
never a store round trip, and each message's steps cost one list item each in one call
per batch.

Roles of one kind in one process (several workers under ``serve all``) share a recorder,
which lives while any of them runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import MutableMapping
from typing import Any

from mhs.observe.events import Event
from mhs.observe.logger import Logger
from mhs.observe.registry import RoleRegistry
from mhs.observe.status import MAX_STEPS, STEP_EVENTS, encode_step, status_name
from mhs.state import StateError, StateStore, create_state_store
from mhs.tasks import stop_task

EventDict = MutableMapping[str, Any]
# Roles whose events make timelines (the GP Connect provider's requests are not messages).
RECORDING_ROLES = frozenset({"outbound", "worker", "spine-proxy", "inbound"})
FLUSH_INTERVAL_S = 0.025
RETRY_INTERVAL_S = 1.0
# How long stop() lets a write in progress finish before cancelling it, and then waits.
STOP_GRACE_S = 5.0
STOP_TIMEOUT_S = 1.0
# Steps held while the store does not answer (a failed write keeps its batch for the
# next); beyond this the newest are dropped (and counted in status.write_failed), so an
# outage cannot exhaust memory.
MAX_PENDING = 100_000


class StatusRecorder:
    """One role's steps waiting to be written, and the task that writes them."""

    def __init__(
        self,
        store: StateStore,
        log: Logger,
        *,
        ttl_s: float,
        interval_s: float = FLUSH_INTERVAL_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self._log = log
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._pending: list[tuple[float, str, str, EventDict]] = []
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def observe(self, event: EventDict) -> None:
        """Keep ``event`` if it is a step of a message (on every log call: keep it cheap)."""
        name = event.get("event")
        if name not in STEP_EVENTS:
            return
        message_id = event.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            return
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            return
        # The event dict is the one this log call made; the chain after us only adds to it.
        self._pending.append((time.time(), str(name), message_id, event))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic writes, then write what is left."""
        # Woken rather than cancelled: a write cancelled half way would lose its batch.
        self._stopping.set()
        task, self._task = self._task, None
        await stop_task(task, within_s=STOP_TIMEOUT_S, grace_s=STOP_GRACE_S)
        await self.flush()

    async def flush(self) -> bool:
        """Write every step gathered so far in one store call; False if that failed."""
        if not self._pending and not self._dropped:
            return True
        pending, self._pending = self._pending, []
        dropped, self._dropped = self._dropped, 0
        batch: dict[str, list[bytes]] = {}
        for at, name, message_id, event in pending:
            key = status_name(message_id)
            steps = batch.get(key)
            if steps is None:
                batch[key] = [encode_step(at, name, event)]
            else:
                steps.append(encode_step(at, name, event, identity=False))
        try:
            if batch:
                await self.store.append(batch, ttl_s=self._ttl_s, cap=MAX_STEPS)
        except StateError as error:
            # Held for the next write, oldest first, as far as the bound allows.
            room = max(0, self._max_pending - len(self._pending))
            self._pending[:0] = pending[:room]
            dropped += len(pending) - min(room, len(pending))
            self._log.warning(
                Event.STATUS_WRITE_FAILED, records=dropped, held=min(room, len(pending)),
                reason=str(error),
            )  # fmt: skip
            return False
        if dropped:
            self._log.warning(
                Event.STATUS_WRITE_FAILED,
                records=dropped,
                reason=f"{dropped} steps dropped while the store was behind",
            )
        return not dropped

    async def _run(self) -> None:
        wait = self._interval_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            # While the store does not answer, try (and say so) once a second, not 40 times.
            wait = self._interval_s if await self.flush() else RETRY_INTERVAL_S


_roles: RoleRegistry[StatusRecorder] = RoleRegistry()


async def acquire(
    role: str, log: Logger, *, state_url: str | None, prefix: str, ttl_s: float
) -> None:
    """Start recording ``role``'s steps (its first user opens the store and the task)."""
    if _roles.join(role) is not None:
        return
    store = create_state_store(state_url, prefix=prefix)
    with contextlib.suppress(StateError):
        # Timelines are not worth refusing to start for: writes go on trying, and the
        # steps that fail are counted in status.write_failed. Nothing is said yet: no step
        # is lost, and a role that needs the store for itself says why it cannot start.
        await store.start()
    recorder = _roles.add(role, StatusRecorder(store, log, ttl_s=ttl_s))
    recorder.start()


async def release(role: str) -> None:
    """One user of ``role``'s recorder stopped; the last one writes what is left and closes."""
    recorder = _roles.leave(role)
    if recorder is not None:
        await recorder.stop()
        await recorder.store.stop()


def record_status(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hand the event to its role's recorder, if that role records."""
    recorder = _roles.get(event_dict.get("role"))
    if recorder is not None:
        recorder.observe(event_dict)
    return event_dict
