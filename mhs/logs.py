"""structlog set-up: one JSON object per line on stdout, the same field names in every role."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from mhs.events import Event

Logger = structlog.stdlib.BoundLogger


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


def _event_as_str(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event = event_dict.get("event")
    if isinstance(event, Event):
        event_dict["event"] = event.value
    return event_dict


def configure_logging(
    level: str = "INFO", fmt: Literal["json", "console"] = "json", *, stream: Any = None
) -> None:
    """Configure structlog (and stdlib logging of libraries) for one process."""
    output = stream if stream is not None else sys.stdout
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _event_as_str,
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(logging.getLevelName(level), logging.WARNING), stream=output)


def get_logger(role: str) -> Any:
    """A logger that stamps ``role`` on every event."""
    return structlog.get_logger().bind(role=role)
