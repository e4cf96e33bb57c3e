"""Messages for a hosted instance's queue, in the NHS adaptor's JSON with our headers added."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from mhs.broker import HeaderValue, OutgoingMessage
from mhs.ebxml import Attachment


def instance_message(
    *,
    ebxml: str,
    payload: str | None,
    attachments: Iterable[Attachment] = (),
    message_id: str,
    correlation_id: str,
    interaction_id: str,
    from_asid: str | None,
    to_asid: str,
    from_party_key: str,
    to_party_key: str,
    ods_code: str,
    extra: Mapping[str, HeaderValue] | None = None,
) -> OutgoingMessage:
    """The queue message: body ``{"ebXML", "payload", "attachments"}`` as the NHS adaptor
    writes it, so its consumers run unchanged; AMQP headers carry the routing facts so
    nobody has to parse XML to learn who sent what to whom."""
    body = orjson.dumps(
        {
            "ebXML": ebxml,
            "payload": payload,
            "attachments": [
                {
                    "payload": a.payload,
                    "is_base64": a.is_base64,
                    "content_id": a.content_id,
                    "content_type": a.content_type,
                }
                for a in attachments
            ],
        }
    )
    headers: dict[str, HeaderValue] = {
        "message-id": message_id,
        "correlation-id": correlation_id,
        "interaction-id": interaction_id,
        "from-asid": from_asid,
        "to-asid": to_asid,
        "from-party-key": from_party_key,
        "to-party-key": to_party_key,
        "ods-code": ods_code,
    }
    if extra:
        headers.update(extra)
    return OutgoingMessage(
        body=body,
        message_id=message_id,
        correlation_id=correlation_id,
        # A header we do not know is left out, never sent as null: AMQP 1.0 readers of
        # the adaptor's queues take application properties as strings.
        headers={k: v for k, v in headers.items() if v is not None},
        type=interaction_id,
        app_id="mhs-inbound",
    )
