"""Log lines reach the stream: at once outside an event loop, within the interval inside."""

from __future__ import annotations

import asyncio
import io

from mhs.observe.logs import FLUSH_AFTER_S, LineWriter


class _Counting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_outside_an_event_loop_every_line_is_flushed() -> None:
    stream = _Counting()
    writer = LineWriter(stream)
    writer.info('{"event": "a"}')
    writer.info('{"event": "b"}')
    assert stream.getvalue() == '{"event": "a"}\n{"event": "b"}\n'
    assert stream.flushes == 2


async def test_inside_an_event_loop_lines_are_flushed_once_per_interval() -> None:
    stream = _Counting()
    writer = LineWriter(stream)
    for n in range(100):
        writer.info(f'{{"n": {n}}}')
    assert stream.flushes == 0
    await asyncio.sleep(FLUSH_AFTER_S * 3)
    assert stream.flushes == 1
    assert stream.getvalue().count("\n") == 100
    writer.info('{"n": 100}')
    await asyncio.sleep(FLUSH_AFTER_S * 3)
    assert stream.flushes == 2


async def test_errors_are_flushed_at_once() -> None:
    stream = _Counting()
    writer = LineWriter(stream)
    writer.error('{"event": "boom"}')
    assert stream.flushes == 1
