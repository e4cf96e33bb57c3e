"""Messages for a hosted instance's queue, in the NHS adaptor's JSON with our headers added."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import orjson

from mhs.broker import HeaderValue, OutgoingMessage
from mhs.ebxml import Attachment

# On a copy an earlier publish of the same message id may already have put on the queue
# (its confirm was lost): the recipient's system can drop it if it has that id.
POSSIBLE_DUPLICATE = "mhs-possible-duplicate"


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
    errors: Sequence[Mapping[str, str]] | None = None,
) -> OutgoingMessage:
    """The queue message: body ``{"ebXML", "payload", "attachments"}`` as the NHS adaptor
    writes it, so its consumers run unchanged; AMQP headers carry the routing facts so
    nobody has to parse XML to learn who sent what to whom. A notice about a message given
    up also carries ``errors``, in the adaptor's error JSON (mhs.reliability.errors)."""
    body = _body(ebxml, payload, attachments, errors)
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
    # A header we do not know is left out, never sent as null: AMQP 1.0 readers of the
    # adaptor's queues take application properties as strings.
    known = {k: v for k, v in headers.items() if v is not None}
    return OutgoingMessage(
        body=body,
        message_id=message_id,
        correlation_id=correlation_id,
        headers=known,
        type=interaction_id,
        app_id="mhs-inbound",
        application_properties=amqp10_properties(known),
    )


def amqp10_properties(headers: Mapping[str, HeaderValue]) -> dict[str, str]:
    """An instance message's headers as AMQP 1.0 readers (the adaptor's consumers) get them,
    as application properties: each as text, a number or a boolean as JSON writes it ("2",
    "true"); our own x- headers left out."""
    return {
        k: v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in headers.items()
        if v is not None and not k.startswith("x-")
    }


def _body(
    ebxml: str,
    payload: str | None,
    attachments: Iterable[Attachment],
    errors: Sequence[Mapping[str, str]] | None,
) -> bytes:
    content: dict[str, object] = {
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
    if errors is not None:
        content["errors"] = list(errors)
    return orjson.dumps(content)
