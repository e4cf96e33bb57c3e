"""A TCP forwarder in front of RabbitMQ that loses publish confirms on purpose (issue 13).

It reads the AMQP 0-9-1 frames both ways. Once armed, the next ``basic.publish`` that a
client sends to a chosen queue goes through whole; the broker's ``basic.ack`` of it (so
the message is certainly queued) is held back, and that client's connection is dropped.
The client sees its publish cut with the confirm outstanding: the outcome it cannot know.
Everything else passes unchanged, so a role behind it behaves as on a direct link.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

_PROTOCOL_HEADER = 8  # b"AMQP\x00\x00\x09\x01", from the client only
_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC = 60
_PUBLISH, _ACK, _NACK = 40, 80, 120

QueueTest = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Frame:
    """One whole frame: its type, channel, payload, and its bytes to pass on as they were."""

    kind: int
    channel: int
    payload: bytes
    raw: bytes

    def method(self) -> tuple[int, int] | None:
        if self.kind != _METHOD:
            return None
        class_id, method_id = struct.unpack_from(">HH", self.payload)
        return class_id, method_id

    def routing_key(self) -> str:
        """A basic.publish's routing key: after class, method, reserved and the exchange."""
        at = 6
        at += 1 + self.payload[at]
        return self.payload[at + 1 : at + 1 + self.payload[at]].decode()


@dataclass
class Frames:
    """Whole frames out of a byte stream, as it arrives in pieces."""

    skip: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> tuple[bytes, list[Frame]]:
        """The leading bytes that are not frames (the protocol header), and whole frames."""
        self._buffer += data
        head = bytes(self._buffer[: self.skip])
        del self._buffer[: len(head)]
        self.skip -= len(head)
        frames = []
        while len(self._buffer) >= 7:
            kind, channel, size = struct.unpack_from(">BHI", self._buffer)
            if len(self._buffer) < 7 + size + 1:
                break
            raw = bytes(self._buffer[: 7 + size + 1])
            frames.append(Frame(kind, channel, raw[7 : 7 + size], raw))
            del self._buffer[: len(raw)]
        return head, frames


@dataclass
class _Held:
    """One connection's armed publish, followed through its frames; then what answers it
    is held back."""

    channel: int | None = None
    body_left: int | None = None
    frozen: bool = False

    def follow(self, frame: Frame) -> None:
        """Follow the client's frames of the publish until it has gone out whole."""
        if frame.channel != self.channel or self.frozen:
            return
        if frame.kind == _HEADER:
            self.body_left = struct.unpack_from(">Q", frame.payload, 4)[0]
        elif frame.kind == _BODY and self.body_left is not None:
            self.body_left -= len(frame.payload)
        # From here the broker's answers stay here: the client never hears of its publish.
        self.frozen = self.body_left == 0

    def holding(self, frame: Frame) -> bool:
        """True for the broker's confirm (or refusal) of the armed publish."""
        return (
            self.frozen
            and frame.channel == self.channel
            and frame.method() in ((_BASIC, _ACK), (_BASIC, _NACK))
        )


class ConfirmLosingLink:
    """Forwards TCP on ``port`` (0: any free one, set by ``up``) to the broker at
    ``host:port``; ``arm`` makes it lose confirms, ``lost`` counts those lost."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._armed: list[QueueTest] = []
        self.port = 0
        self.lost = 0

    def arm(self, queue: str | QueueTest, times: int = 1) -> None:
        """Lose the confirm of the next ``times`` publishes to ``queue`` (a name, or a test
        of the routing key), each on whichever connection sends it."""
        test = queue if callable(queue) else queue.__eq__
        self._armed.extend([test] * times)

    def disarm(self) -> None:
        """Forget the arms no publish has taken yet."""
        self._armed.clear()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    def _take_arm(self, frame: Frame) -> bool:
        if not self._armed or frame.method() != (_BASIC, _PUBLISH):
            return False
        key = frame.routing_key()
        for index, test in enumerate(self._armed):
            if test(key):
                del self._armed[index]
                return True
        return False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        held = _Held()

        async def client_to_broker() -> None:
            frames = Frames(skip=_PROTOCOL_HEADER)
            while data := await reader.read(65536):
                head, whole = frames.feed(data)
                upstream_writer.write(head)
                for frame in whole:
                    upstream_writer.write(frame.raw)
                    if held.channel is None and self._take_arm(frame):
                        held.channel = frame.channel
                    elif held.channel is not None:
                        held.follow(frame)
                await upstream_writer.drain()

        async def broker_to_client() -> None:
            frames = Frames()
            while data := await upstream_reader.read(65536):
                for frame in frames.feed(data)[1]:
                    if held.holding(frame):
                        self.lost += 1
                        return
                    if not held.frozen:
                        writer.write(frame.raw)
                await writer.drain()

        await asyncio.gather(
            _closing(client_to_broker(), upstream_writer, writer),
            _closing(broker_to_client(), writer, upstream_writer),
        )
        self._writers.difference_update((writer, upstream_writer))


async def _closing(copy: Coroutine[object, object, None], *sinks: asyncio.StreamWriter) -> None:
    """Run one direction's copy; when it ends, for whatever reason, both sides close."""
    with contextlib.suppress(ConnectionError, OSError):
        await copy
    for sink in sinks:
        sink.close()
