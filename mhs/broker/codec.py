"""What both transports agree on: header values, expirations and timestamps as AMQP has them."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from mhs.broker.base import BrokerError, HeaderValue, OutgoingMessage, PublishError

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
    """Received AMQP headers as ``HeaderValue``s (see ``header_value``), without the
    encoded AMQP 1.0 application properties (``AMQP10_APP_PROPERTIES_HEADER``): they are
    for AMQP 1.0 readers, and a copy published onward must not carry them stale."""
    if not table:
        return {}
    return {
        key: header_value(value)
        for key, value in table.items()
        if key != AMQP10_APP_PROPERTIES_HEADER
    }


# An AMQP 0-9-1 header RabbitMQ's AMQP 1.0 side reads as the message's encoded AMQP 1.0
# application-properties section. The 3.x plugin (rabbit_amqp1_0_message) maps no other
# header to application properties (3.11+ can, behind a setting that is off by default);
# the later message containers (mc_amqpl) read this header first too.
AMQP10_APP_PROPERTIES_HEADER = "x-amqp-1.0-app-properties"


def amqp10_application_properties(properties: Mapping[str, str]) -> bytearray:
    """``properties`` as an AMQP 1.0 application-properties section: the described type
    0x74 holding a map of string keys to string values (AMQP 1.0 part 3, types and
    messaging). A bytearray, because pamqp sends that, and only that, as an AMQP byte
    array ('x'); text would go as UTF-8 and arrive changed."""
    items = b"".join(_amqp10_key(k) + _amqp10_string(v.encode()) for k, v in properties.items())
    count = 2 * len(properties)  # a map counts keys and values
    if len(items) + 1 <= 0xFF and count <= 0xFF:
        encoded = b"\xc1" + bytes((len(items) + 1, count)) + items  # map8
    else:
        encoded = b"\xd1" + struct.pack(">II", len(items) + 4, count) + items  # map32
    return bytearray(b"\x00\x53\x74" + encoded)  # descriptor: smallulong 0x74


@lru_cache(maxsize=256)
def _amqp10_key(text: str) -> bytes:
    # Every message carries the same few names.
    return _amqp10_string(text.encode())


def _amqp10_string(data: bytes) -> bytes:
    if len(data) <= 0xFF:
        return b"\xa1" + bytes((len(data),)) + data  # str8-utf8
    return b"\xb1" + struct.pack(">I", len(data)) + data  # str32-utf8


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


def amqp091_headers(message: OutgoingMessage) -> dict[str, Any] | None:
    """The AMQP 0-9-1 header table to publish ``message`` with: its headers (checked as
    ``outgoing_headers`` does) and its ``application_properties`` encoded for AMQP 1.0
    readers (``AMQP10_APP_PROPERTIES_HEADER``)."""
    headers: dict[str, Any] | None = outgoing_headers(message.headers)
    if message.application_properties is None:
        return headers
    section = amqp10_application_properties(message.application_properties)
    return {**(headers or {}), AMQP10_APP_PROPERTIES_HEADER: section}


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
