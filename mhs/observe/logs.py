"""structlog set-up: one JSON object per line on stdout, the same field names in every role.

The first processors count every event into its role's metrics (mhs.observe.metrics) and hand
message steps to its status timeline (mhs.observe.recorder); the log level is applied after
them, so neither depends on what the log level lets through.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, cast

import ecs_logging
import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from mhs.observe.events import Event
from mhs.observe.logger import Logger
from mhs.observe.metrics import record_metrics
from mhs.observe.recorder import record_status

LogFormat = Literal["json", "console", "ecs"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "err": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
}


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _event_as_str(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event = event_dict.get("event")
    if isinstance(event, Event):
        event_dict["event"] = event.value
    return event_dict


def _ecs_action(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # ECS keeps the text in `message` and the machine-readable name in `event.action`.
    event_dict["event.action"] = str(event_dict.get("event"))
    return event_dict


class _LevelFilter:
    """Drops events below the configured level (after the metrics have seen them)."""

    __slots__ = ("_dropped",)

    def __init__(self, level: str) -> None:
        minimum = logging.getLevelName(level.upper())
        self._dropped = frozenset(name for name, value in _LEVELS.items() if value < minimum)

    def __call__(self, _: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if method_name in self._dropped:
            raise structlog.DropEvent
        return event_dict


def _chain(level: str, fmt: LogFormat) -> list[Processor]:
    head: list[Processor] = [
        record_metrics,
        record_status,
        _LevelFilter(level),
    ]
    if fmt == "ecs":
        return [
            *head,
            _event_as_str,
            _ecs_action,
            structlog.processors.format_exc_info,
            cast(Processor, ecs_logging.StructlogFormatter()),
        ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        *head,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _event_as_str,
        structlog.processors.dict_tracebacks,
        renderer,
    ]


FLUSH_AFTER_S = 0.1


class LineWriter:
    """Writes rendered lines to a text stream, flushing within ``FLUSH_AFTER_S``.

    structlog's WriteLogger flushes after every line: a system call per event on every
    message's path. Inside an event loop this flushes once per interval instead; outside
    one (the CLI, start-up, shutdown) and for errors, at once.
    """

    __slots__ = ("_file", "_scheduled")

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._scheduled = False

    def msg(self, message: str) -> None:
        self._file.write(message + "\n")
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._file.flush()
            return
        self._scheduled = True
        loop.call_later(FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        with contextlib.suppress(ValueError):  # the stream was closed under us
            self._file.flush()

    def msg_now(self, message: str) -> None:
        self._file.write(message + "\n")
        self.flush()

    log = debug = info = warn = warning = msg
    err = error = exception = critical = fatal = msg_now


_writer: LineWriter | None = None


@atexit.register
def _flush_at_exit() -> None:
    if _writer is not None:
        _writer.flush()


def configure_logging(level: str = "INFO", fmt: LogFormat = "json", *, stream: Any = None) -> None:
    """Configure structlog (and stdlib logging of libraries) for one process."""
    global _writer  # noqa: PLW0603 - one logging set-up per process
    output = stream if stream is not None else sys.stdout
    if _writer is not None:
        _writer.flush()
    writer = _writer = LineWriter(output)
    structlog.configure(
        processors=_chain(level, fmt),
        # Every level reaches the processors: the metrics count what the level drops.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(_library_formatter(fmt))
    logging.basicConfig(level=max(logging.getLevelName(level), logging.WARNING), handlers=[handler])


class _LibraryJson(logging.Formatter):
    """Libraries' own (stdlib) log records as JSON lines too, as event ``library.log``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "event": Event.LIBRARY_LOG.value,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["message"] += "\n" + self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def _library_formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "ecs":
        return ecs_logging.StdlibFormatter()
    if fmt == "json":
        return _LibraryJson()
    return logging.Formatter("%(levelname)s %(name)s: %(message)s")


def get_logger(role: str) -> Logger:
    """A logger that stamps ``role`` on every event."""
    logger: Logger = structlog.get_logger().bind(role=role)
    return logger
