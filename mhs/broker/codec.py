"""What both transports agree on: header values, expirations and timestamps as AMQP has them."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from mhs.broker.base import BrokerError, HeaderValue, PublishError

_LONG_LONG = 2**63


def header_value(value: object) -> HeaderValue:
    """One received AMQP header value as a ``HeaderValue``.

    Scalars stay as they are; byte strings become text (UTF-8, undecodable bytes replaced);
    timestamps become ISO 8601 text; decimals become floats; arrays and tables (RabbitMQ's
    ``x-death``) become their JSON text, so nothing the broker added is lost.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: object) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot represent {type(value).__name__} in a header")


def decode_headers(table: Mapping[str, object] | None) -> dict[str, HeaderValue]:
    """Received AMQP headers as ``HeaderValue``s (see ``header_value``)."""
    if not table:
        return {}
    return {key: header_value(value) for key, value in table.items()}


def outgoing_headers(headers: Mapping[str, HeaderValue]) -> dict[str, HeaderValue] | None:
    """A copy of ``headers`` to publish (None when empty); a value that is not a
    ``HeaderValue`` fails the publish on every transport alike."""
    if not headers:
        return None
    for key, value in headers.items():
        fits = (
            value is None
            or isinstance(value, str | bool)
            or (isinstance(value, float) and _single_precision(value))
            or (isinstance(value, int) and -_LONG_LONG <= value < _LONG_LONG)
        )
        if not fits:
            raise PublishError(f"header {key!r}: {value!r} is not a HeaderValue AMQP can carry")
    return dict(headers)


def _single_precision(value: float) -> bool:
    # AMQP tables carry floats in 32 bits (pamqp's 'f'): one that does not fit exactly
    # would arrive changed (an epoch time by minutes), so it fails instead. Use ints.
    return bool(struct.unpack("f", struct.pack("f", value))[0] == value)


def expiration_ms(seconds: float | None) -> int | None:
    """A per-message expiration in whole milliseconds, as the AMQP property carries it."""
    if seconds is None:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise PublishError(f"expiration must be a finite number of seconds >= 0, not {seconds}")
    return int(seconds * 1000)


def queue_ttl_ms(seconds: float | None) -> int | None:
    """A queue's message TTL in whole milliseconds (``x-message-ttl``)."""
    if seconds is None:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise BrokerError(f"message_ttl_s must be a finite number of seconds >= 0, not {seconds}")
    return int(seconds * 1000)


def amqp_timestamp(value: datetime | None) -> datetime | None:
    """``value`` as AMQP carries it: whole seconds, UTC (a naive value is taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value.timestamp()), tz=UTC)
