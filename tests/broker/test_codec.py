"""Header decoding, expirations and the transport factory."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from mhs.broker import BrokerError, PublishError
from mhs.broker.codec import (
    amqp_timestamp,
    decode_headers,
    expiration_ms,
    outgoing_headers,
    queue_ttl_ms,
)
from mhs.broker.factory import create_broker
from mhs.broker.memory import MemoryBroker
from mhs.broker.rabbitmq import RabbitMqBroker
from mhs.broker.rabbitmq_nodes import Nodes
from mhs.settings import Settings


def test_received_headers_become_header_values() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    decoded = decode_headers(
        {
            "text": "t",
            "number": 3,
            "ratio": 0.5,
            "flag": False,
            "nothing": None,
            "raw": b"caf\xc3\xa9",
            "broken": b"\xff",
            "when": when,
            "money": Decimal("1.50"),
            "x-death": [{"count": 1, "time": when, "routing-keys": [b"q"]}],
        }
    )
    assert decoded == {
        "text": "t",
        "number": 3,
        "ratio": 0.5,
        "flag": False,
        "nothing": None,
        "raw": "café",
        "broken": "\ufffd",
        "when": "2026-01-02T03:04:05+00:00",
        "money": 1.5,
        "x-death": '[{"count":1,"time":"2026-01-02T03:04:05+00:00","routing-keys":["q"]}]',
    }
    x_death = decoded["x-death"]
    assert isinstance(x_death, str)
    assert orjson.loads(x_death)[0]["count"] == 1
    assert decode_headers(None) == {}


def test_outgoing_headers_are_copied_and_checked() -> None:
    headers = {"a": 1}
    copied = outgoing_headers(headers)
    assert copied == headers
    assert copied is not headers
    assert outgoing_headers({}) is None
    with pytest.raises(PublishError, match="'big'"):
        outgoing_headers({"big": 2**63})


def test_expirations_are_whole_milliseconds() -> None:
    assert expiration_ms(None) is None
    assert expiration_ms(0.2) == 200
    assert queue_ttl_ms(1.5) == 1500
    with pytest.raises(PublishError):
        expiration_ms(-1)
    with pytest.raises(BrokerError):
        queue_ttl_ms(float("nan"))


def test_timestamps_are_whole_seconds_in_utc() -> None:
    naive = datetime(2026, 5, 6, 7, 8, 9, 999_999)
    assert amqp_timestamp(naive) == datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert amqp_timestamp(None) is None


def test_the_factory_picks_the_transport_from_the_url() -> None:
    assert isinstance(create_broker(None, connection_name="t"), MemoryBroker)
    rabbit = create_broker(
        "amqps://u:p@rabbit:5671/vhost", connection_name="t", queue_type="classic", delivery_limit=5
    )
    assert isinstance(rabbit, RabbitMqBroker)
    assert rabbit.connection_name == "t"
    assert not rabbit.is_connected
    with pytest.raises(ValueError, match="amqp"):
        create_broker("http://rabbit/", connection_name="t")


def test_settings_and_the_broker_read_a_node_list_alike() -> None:
    url = "amqp://a:5672/, amqp://b:5672/,"  # blanks and a trailing comma are ignored
    assert Nodes(Settings(broker_url=url).broker_url or "").urls == [
        "amqp://a:5672/",
        "amqp://b:5672/",
    ]
    with pytest.raises(ValueError, match="broker_url holds no URL"):
        Settings(broker_url=" , ")
