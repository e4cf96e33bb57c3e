from __future__ import annotations

import base64
import dataclasses
import re

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mhs.ebxml import (
    ACTOR_NEXT_MSH,
    ACTOR_TO_PARTY_MSH,
    REQUEST_CONTENT_TYPE,
    Attachment,
    EbxmlError,
    EbxmlMessage,
    MessageHeader,
    build_acknowledgment,
    build_request,
    classify_reply,
    parse_message,
    peek_header,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_SPACE = " \t\r\n"

xml_chars = st.characters(exclude_categories=["Cs"]).filter(
    lambda c: _XML_CHAR.fullmatch(c) is not None
)
xml_text = st.text(xml_chars, max_size=40)
# The parser strips XML white space around header values, as pretty-printed XML needs.
field = xml_text.filter(lambda s: s != "" and s.strip(_XML_SPACE) == s)
# Message ids and content ids travel in MIME headers and cid: URLs.
mime_id = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c not in "<>"),
    min_size=1,
    max_size=40,
)
content_types = st.sampled_from(
    ["text/plain", "text/xml", "application/pdf", "image/png", "text/plain; charset=UTF-8"]
)


@st.composite
def headers(draw: st.DrawFn) -> MessageHeader:
    ack_requested = draw(st.booleans())
    return MessageHeader(
        from_party_id=draw(field),
        to_party_id=draw(field),
        cpa_id=draw(field),
        conversation_id=draw(field),
        service=draw(field),
        action=draw(field),
        message_id=draw(mime_id),
        timestamp=draw(field),
        ref_to_message_id=draw(st.none() | field),
        duplicate_elimination=draw(st.booleans()),
        ack_requested=ack_requested,
        ack_actor=draw(st.sampled_from([None, ACTOR_TO_PARTY_MSH, ACTOR_NEXT_MSH]))
        if ack_requested
        else None,
        sync_reply=draw(st.booleans()),
    )


@st.composite
def attachments(draw: st.DrawFn) -> Attachment:
    binary = draw(st.booleans())
    payload = (
        base64.b64encode(draw(st.binary(max_size=200))).decode()
        if binary
        else draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=200))
    )
    return Attachment(
        content_id=draw(mime_id),
        content_type=draw(content_types),
        payload=payload,
        is_base64=binary,
        description=draw(xml_text),
    )


payloads = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
attachment_lists = st.lists(attachments(), max_size=3, unique_by=lambda a: a.content_id)


def expected_header(header: MessageHeader) -> MessageHeader:
    """What a header reads back as: the writer puts toPartyMSH on an actor-less AckRequested."""
    if header.ack_requested and header.ack_actor is None:
        return dataclasses.replace(header, ack_actor=ACTOR_TO_PARTY_MSH)
    return header


@FAST
@given(headers(), payloads, attachment_lists)
@example(
    MessageHeader("a&b", "<c>", '"', "a\rb", "x\ty", "]]>", "M", "T"),
    "\r\n\r\n",
    [Attachment("c", "text/plain", "\r", False, " \r\n ")],
)
def test_round_trip(header: MessageHeader, payload: str, items: list[Attachment]) -> None:
    try:
        body, content_type = build_request(header, payload, items)
    except EbxmlError as error:
        # Only a text part that holds the boundary line may be refused.
        assume("boundary" not in str(error))
        raise
    message = parse_message(content_type, body)
    assert message.header == expected_header(header)
    assert message.payload == payload
    assert message.attachments == tuple(items)
    assert peek_header(content_type, body) == message.header
    message_lf = parse_message(content_type, body.replace(b"\r\n", b"\n"))
    assert message_lf.header == message.header


KINDS = {"acknowledgment", "message-error", "soap-fault", "empty", "other"}


def _never_raises_but_ebxml_error(content_type: str, body: bytes) -> None:
    try:
        message: EbxmlMessage | None = parse_message(content_type, body)
    except EbxmlError:
        message = None
    try:
        header: MessageHeader | None = peek_header(content_type, body)
    except EbxmlError:
        header = None
    if message is not None:
        # Whatever parse_message accepts, peek_header reads the same header from.
        assert header == message.header
    assert classify_reply(content_type, body).kind in KINDS


@FAST
@given(st.binary(max_size=500))
def test_arbitrary_bytes(body: bytes) -> None:
    _never_raises_but_ebxml_error(REQUEST_CONTENT_TYPE, body)
    _never_raises_but_ebxml_error(REQUEST_CONTENT_TYPE, b"----=_MIME-Boundary\r\n" + body)
    assert classify_reply(None, body).kind in KINDS


@FAST
@given(st.text(max_size=120), st.binary(max_size=120))
def test_arbitrary_content_types(content_type: str, body: bytes) -> None:
    _never_raises_but_ebxml_error(content_type, body)
    _never_raises_but_ebxml_error(
        'multipart/related; boundary="' + content_type + '"', b"--" + content_type.encode() + body
    )


_BODY, _CONTENT_TYPE = build_request(
    MessageHeader(
        "A91424-9199121",
        "YES-0000806",
        "S1001A1630",
        "10F5A436-1913-43F0-9F18-95EA0E43E61A",
        "urn:nhs:names:services:psis",
        "MCCI_IN010000UK13",
        "C614484E-4B10-499A-9ACD-5D645CFACF61",
        "2019-05-04T20:55:16Z",
        duplicate_elimination=True,
        ack_requested=True,
        sync_reply=True,
    ),
    '<hl7:MCCI_IN010000UK13 xmlns:hl7="urn:hl7-org:v3"/>',
    [
        Attachment("a@spine.nhs.uk", "text/plain", "Some payload", False, "Some description"),
        Attachment("b@spine.nhs.uk", "image/png", base64.b64encode(b"\x89PNG").decode(), True),
    ],
)
_ACK = build_acknowledgment(
    MessageHeader("A", "B", "C", "D", "E", "F", "G", "H"), message_id="I", timestamp="J"
)
_MARKERS = [b"\r\n", b"<", b">", b"--", b":", b"=", b'"', b"/", b"\n\n", b"&", b"<!DOCTYPE x>"]


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["delete", "insert", "flip", "truncate", "marker"]))
        if action == "delete":
            del data[where : where + draw(st.integers(1, 40))]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=20))
        elif action == "flip" and where < len(data):
            data[where] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del data[where:]
        else:
            data[where:where] = draw(st.sampled_from(_MARKERS))
    return bytes(data)


@FAST
@given(mutated(_BODY))
def test_mutated_requests(body: bytes) -> None:
    _never_raises_but_ebxml_error(_CONTENT_TYPE, body)


@FAST
@given(mutated(_ACK), st.sampled_from([None, "text/xml", _CONTENT_TYPE]))
def test_mutated_replies(body: bytes, content_type: str | None) -> None:
    assert classify_reply(content_type, body).kind in KINDS
