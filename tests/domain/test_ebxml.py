from __future__ import annotations

import base64
import dataclasses
import functools
import re
from typing import Any

import pytest
from lxml import etree

from mhs.ebxml import (
    ACTOR_NEXT_MSH,
    ACTOR_SOAP_NEXT,
    ACTOR_TO_PARTY_MSH,
    EBXML_SERVICE,
    ERROR_CODE_CONTEXT,
    MAX_PART_BYTES,
    NS_EB,
    NS_NASP,
    NS_SOAP,
    NS_XLINK,
    REQUEST_CONTENT_TYPE,
    TMS_CODE_CONTEXT,
    Attachment,
    EbxmlError,
    ErrorDetail,
    ExternalReference,
    MessageHeader,
    build_acknowledgment,
    build_message_error,
    build_request,
    build_soap_fault,
    classify_reply,
    extract_device_asids,
    parse_header,
    parse_message,
    peek_header,
    timestamp_now,
)
from mhs.ids import new_id

NS = {"SOAP": NS_SOAP, "eb": NS_EB, "xlink": NS_XLINK, "nasp": NS_NASP}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
PAYLOAD = '<hl7:MCCI_IN010000UK13 xmlns:hl7="urn:hl7-org:v3"/>'
CONTENT_TYPE = REQUEST_CONTENT_TYPE


def make_header(**changes: object) -> MessageHeader:
    header = MessageHeader(
        from_party_id="A91424-9199121",
        to_party_id="YES-0000806",
        cpa_id="S1001A1630",
        conversation_id="10F5A436-1913-43F0-9F18-95EA0E43E61A",
        service="urn:nhs:names:services:psis",
        action="MCCI_IN010000UK13",
        message_id="C614484E-4B10-499A-9ACD-5D645CFACF61",
        timestamp="2019-05-04T20:55:16Z",
        ref_to_message_id="F106022D-758B-49A9-A80A-8FF211C32A43",
        duplicate_elimination=True,
        ack_requested=True,
        ack_actor=ACTOR_TO_PARTY_MSH,
        sync_reply=True,
    )
    return dataclasses.replace(header, **changes)  # type: ignore[arg-type]


def text_attachment(
    text: str = "Some payload", description: str = "Some description"
) -> Attachment:
    return Attachment(
        content_id=f"{new_id()}@spine.nhs.uk",
        content_type="text/plain",
        payload=text,
        is_base64=False,
        description=description,
    )


def png_attachment(description: str = "A picture") -> Attachment:
    return Attachment(
        content_id=f"{new_id()}@spine.nhs.uk",
        content_type="image/png",
        payload=base64.b64encode(PNG).decode(),
        is_base64=True,
        description=description,
    )


def envelope(body: bytes) -> etree._Element:
    return etree.fromstring(body)


def xpath(root: etree._Element, expression: str) -> list[Any]:
    result = root.xpath(expression, namespaces=NS)
    assert isinstance(result, list)
    return result


def multipart(*parts: str, ending: str = "\r\n") -> bytes:
    """A hand-made ebXML multipart body from raw part texts (headers, blank line, body)."""
    lines = []
    for part in parts:
        lines.append("----=_MIME-Boundary")
        lines.append(part)
    lines.append("----=_MIME-Boundary--")
    return (ending.join(lines) + ending).encode()


def ebxml_part(xml: str) -> str:
    return (
        "Content-Id: <ebXMLHeader@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{xml}"
    )


def payload_part(text: str = PAYLOAD, content_type: str = "text/xml") -> str:
    return (
        f"Content-Id: <payload@spine.nhs.uk>\r\nContent-Type: {content_type}\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}"
    )


def request_envelope(header: MessageHeader | None = None) -> str:
    body, _ = build_request(header or make_header(), PAYLOAD)
    return parse_message(CONTENT_TYPE, body).ebxml


# --- round trips -----------------------------------------------------------------------


def test_round_trip_keeps_header_payload_and_attachments() -> None:
    header = make_header()
    attachments = [text_attachment(), png_attachment()]
    body, content_type = build_request(header, PAYLOAD, attachments)
    message = parse_message(content_type, body)
    assert message.header == header
    assert message.payload == PAYLOAD
    assert message.attachments == tuple(attachments)
    assert base64.b64decode(message.attachments[1].payload) == PNG


def test_round_trip_of_xml_special_characters() -> None:
    header = make_header(
        from_party_id="A&B<C>\"D'",
        cpa_id="S1001 & <CPA>",
        service="urn:x]]>y",
        action="tab\there\r\nnew line",
        conversation_id="ünïcödé 日本 \U0001f600",
    )
    payload = '<a xmlns="urn:hl7-org:v3">x &amp; y &lt; z ]]&gt; "q"</a>'
    attachments = [text_attachment('<not xml> & "quotes"\r\nline 2', 'desc <&> "q" \t\r\n')]
    body, content_type = build_request(header, payload, attachments)
    message = parse_message(content_type, body)
    assert message.header == header
    assert message.payload == payload
    assert message.attachments == tuple(attachments)


def test_request_framing_content_type_and_crlf() -> None:
    header = make_header()
    attachment = text_attachment()
    body, content_type = build_request(header, PAYLOAD, [attachment])
    assert content_type == (
        'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; '
        'start="<ebXMLHeader@spine.nhs.uk>"'
    )
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert body.startswith(
        b"----=_MIME-Boundary\r\nContent-Id: <ebXMLHeader@spine.nhs.uk>\r\n"
        b"Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    assert (
        f"----=_MIME-Boundary\r\nContent-Id: <{header.message_id}@spine.nhs.uk>\r\n"
        "Content-Type: text/xml; charset=UTF-8\r\n".encode()
    ) in body
    assert f"Content-Id: <{attachment.content_id}>\r\nContent-Type: text/plain\r\n".encode() in body
    assert body.endswith(b"\r\n----=_MIME-Boundary--\r\n")


def test_attachment_transfer_encodings() -> None:
    body, _ = build_request(make_header(), PAYLOAD, [text_attachment(), png_attachment()])
    assert body.count(b"Content-Transfer-Encoding: 8bit\r\n") == 3
    assert body.count(b"Content-Transfer-Encoding: base64\r\n") == 1


def test_manifest_has_one_reference_per_part() -> None:
    header = make_header()
    attachments = [text_attachment(description="first"), png_attachment(description="")]
    body, content_type = build_request(header, PAYLOAD, attachments)
    root = envelope(parse_message(content_type, body).ebxml.encode())
    hrefs = xpath(root, "//eb:Manifest/eb:Reference/@xlink:href")
    assert hrefs == [
        f"cid:{header.message_id}@spine.nhs.uk",
        f"cid:{attachments[0].content_id}",
        f"cid:{attachments[1].content_id}",
    ]
    hl7 = xpath(root, "//eb:Reference[1]")[0]
    assert xpath(hl7, "eb:Schema/@eb:location") == [
        "http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd"
    ]
    assert hl7.findtext(f"{{{NS_EB}}}Description") == "HL7 payload"
    assert xpath(root, "//eb:Reference[2]/eb:Description/text()") == ["first"]
    assert xpath(root, "//eb:Reference[3]/eb:Description") == []


def test_manifest_names_documents_and_references_external_ones() -> None:
    # As the GP2GP adaptor sends a large record: a document of its own, named, and a
    # fragment sent in a message of its own, referenced by that message's id.
    header = make_header()
    named = dataclasses.replace(text_attachment(description="Scan"), document_id="DOC-1")
    external = ExternalReference(
        "8F1D7DE1-02AB-48D7-A797-A947B09F347F@spine.nhs.uk",
        'Filename="A&E letter.txt" ContentType=text/plain Compressed=No',
        document_id="DOC-2",
    )
    body, content_type = build_request(header, PAYLOAD, [named], [external])
    message = parse_message(content_type, body)
    root = envelope(message.ebxml.encode())
    assert xpath(root, "//eb:Manifest/eb:Reference/@xlink:href")[1:] == [
        f"cid:{named.content_id}",
        "mid:8F1D7DE1-02AB-48D7-A797-A947B09F347F@spine.nhs.uk",
    ]
    assert xpath(root, "//eb:Reference/@eb:id") == ["DOC-1", "DOC-2"]
    assert xpath(root, "//eb:Reference[3]/eb:Description/text()") == [external.description]
    # Only the named document is a MIME part: the external one travels on its own.
    assert [a.content_id for a in message.attachments] == [named.content_id]


def test_header_elements_and_flags_as_written() -> None:
    header = make_header(ack_actor=ACTOR_NEXT_MSH, sync_reply=False)
    root = envelope(request_envelope(header).encode())
    message_header = root.find(f"{{{NS_SOAP}}}Header/{{{NS_EB}}}MessageHeader")
    assert message_header is not None
    assert message_header.get(f"{{{NS_SOAP}}}mustUnderstand") == "1"
    assert message_header.get(f"{{{NS_EB}}}version") == "2.0"
    party = message_header.find(f"{{{NS_EB}}}From/{{{NS_EB}}}PartyId")
    assert party is not None
    assert party.get(f"{{{NS_EB}}}type") == "urn:nhs:names:partyType:ocs+serviceInstance"
    assert message_header.find(f"{{{NS_EB}}}DuplicateElimination") is not None
    ack = root.find(f"{{{NS_SOAP}}}Header/{{{NS_EB}}}AckRequested")
    assert ack is not None
    assert ack.get(f"{{{NS_SOAP}}}actor") == ACTOR_NEXT_MSH
    assert ack.get(f"{{{NS_EB}}}signed") == "false"
    assert root.find(f"{{{NS_SOAP}}}Header/{{{NS_EB}}}SyncReply") is None


def test_sync_reply_actor_and_absent_flags() -> None:
    header = make_header(
        duplicate_elimination=False, ack_requested=False, ack_actor=None, ref_to_message_id=None
    )
    text = request_envelope(header)
    assert "DuplicateElimination" not in text
    assert "AckRequested" not in text
    assert "RefToMessageId" not in text
    assert f'SOAP:actor="{ACTOR_SOAP_NEXT}"' in text
    assert parse_header(text) == header


def test_ack_requested_without_actor_defaults_to_to_party_msh() -> None:
    body, content_type = build_request(make_header(ack_actor=None), PAYLOAD)
    assert parse_message(content_type, body).header.ack_actor == ACTOR_TO_PARTY_MSH


def test_parser_accepts_lf_line_ends() -> None:
    header = make_header()
    attachments = [text_attachment("one\r\ntwo"), png_attachment()]
    body, content_type = build_request(header, PAYLOAD, attachments)
    message = parse_message(content_type, body.replace(b"\r\n", b"\n"))
    assert message.header == header
    assert message.payload == PAYLOAD
    assert message.attachments[0].payload == "one\ntwo"
    assert message.attachments[1] == attachments[1]


def test_message_without_payload_part() -> None:
    text = request_envelope()
    message = parse_message(CONTENT_TYPE, multipart(ebxml_part(text)))
    assert message.payload is None
    assert message.attachments == ()
    assert message.ebxml == text


def test_attachment_8bit_but_binary_comes_back_as_base64() -> None:
    raw = (
        b"Content-Id: <bin@spine.nhs.uk>\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = multipart(ebxml_part(request_envelope()), payload_part()).replace(
        b"----=_MIME-Boundary--",
        b"----=_MIME-Boundary\r\n" + raw + PNG + b"\r\n----=_MIME-Boundary--",
    )
    attachment = parse_message(CONTENT_TYPE, body).attachments[0]
    assert attachment.is_base64
    assert attachment.content_id == "bin@spine.nhs.uk"
    assert attachment.content_type == "application/octet-stream"
    assert base64.b64decode(attachment.payload) == PNG


def test_exactly_one_hundred_parts_is_allowed() -> None:
    attachments = [text_attachment(str(n)) for n in range(98)]
    body, content_type = build_request(make_header(), PAYLOAD, attachments)
    assert len(parse_message(content_type, body).attachments) == 98


def test_a_part_of_exactly_the_limit_is_allowed() -> None:
    big = Attachment("big@spine.nhs.uk", "text/plain", "x" * MAX_PART_BYTES, False)
    body, content_type = build_request(make_header(), PAYLOAD, [big])
    assert len(parse_message(content_type, body).attachments[0].payload) == MAX_PART_BYTES


def test_start_parameter_without_angle_brackets_and_no_start() -> None:
    body, _ = build_request(make_header(), PAYLOAD)
    for content_type in (
        'multipart/related; boundary="--=_MIME-Boundary"; type=text/xml; '
        "start=ebXMLHeader@spine.nhs.uk",
        'multipart/related; boundary="--=_MIME-Boundary"',
        'Multipart/Related; charset="UTF-8"; boundary="--=_MIME-Boundary"',
    ):
        assert parse_message(content_type, body).header == make_header()


# --- peek_header -------------------------------------------------------------------------


def test_peek_header_matches_parse_message() -> None:
    body, content_type = build_request(make_header(), PAYLOAD, [png_attachment()])
    assert peek_header(content_type, body) == parse_message(content_type, body).header
    assert peek_header(content_type, body.replace(b"\r\n", b"\n")) == make_header()


def test_peek_header_does_not_read_the_later_parts() -> None:
    # The HL7 part is binary: parse_message refuses it, peek_header never looks at it.
    body = multipart(ebxml_part(request_envelope()), payload_part()).replace(PAYLOAD.encode(), PNG)
    with pytest.raises(EbxmlError, match="HL7 payload is not UTF-8"):
        parse_message(CONTENT_TYPE, body)
    assert peek_header(CONTENT_TYPE, body) == make_header()


def test_peek_header_refuses_what_parse_message_refuses_in_the_envelope() -> None:
    body = multipart(ebxml_part("<SOAP:Envelope"), payload_part())
    with pytest.raises(EbxmlError, match="not well formed"):
        peek_header(CONTENT_TYPE, body)
    with pytest.raises(EbxmlError, match="not multipart"):
        peek_header("text/xml", body)


# --- parse errors ------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">&lol4;</SOAP:Envelope>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">&xxe;</SOAP:Envelope>"""


def _without(text: str, element: str) -> str:
    return re.sub(rf"<eb:{element}>[^<]*</eb:{element}>", "", text)


@functools.cache
def bad_cases() -> list[tuple[str, str, bytes, str]]:
    good = request_envelope()
    related = CONTENT_TYPE
    return [
        ("not multipart", "text/xml", good.encode(), "is not multipart"),
        ("no boundary", "multipart/related; type=text/xml", b"x", "has no boundary parameter"),
        ("boundary too long", f'multipart/related; boundary="{"b" * 71}"', b"x", "bad boundary"),
        (
            "boundary not in body",
            'multipart/related; boundary="other"',
            multipart(ebxml_part(good)),
            "no MIME part delimited by the boundary 'other'",
        ),
        ("multipart/mixed", related.replace("related", "mixed"), b"", "not multipart/related"),
        ("no parts", related, b"----=_MIME-Boundary--\r\n", "no MIME part"),
        ("no header at all", related, b"Message\n", "no MIME part delimited"),
        (
            "too many parts",
            related,
            multipart(ebxml_part(good), *[payload_part()] * 100),
            "more than 100 MIME parts",
        ),
        (
            "oversize part",
            related,
            multipart(ebxml_part(good), payload_part("x" * (MAX_PART_BYTES + 1))),
            r"MIME part 2 \(Content-Id <payload@spine.nhs.uk>\) is 5,000,001 bytes, over the "
            "EIS limit of 5,000,000 per part",
        ),
        (
            "malformed XML",
            related,
            multipart(ebxml_part(good.replace("</SOAP:Header>", ""))),
            r"MIME part 1 \(Content-Id <ebXMLHeader@spine.nhs.uk>\): XML is not well formed",
        ),
        (
            "billion laughs",
            related,
            multipart(ebxml_part(BILLION_LAUGHS)),
            "DOCTYPE is not allowed",
        ),
        ("external entity", related, multipart(ebxml_part(EXTERNAL_ENTITY)), "DOCTYPE"),
        (
            "missing MessageId",
            related,
            multipart(ebxml_part(_without(good, "MessageId"))),
            "eb:MessageHeader lacks eb:MessageData/eb:MessageId$",
        ),
        (
            "missing CPAId and Action",
            related,
            multipart(ebxml_part(_without(_without(good, "CPAId"), "Action"))),
            "lacks eb:CPAId, eb:Action$",
        ),
        (
            "empty To PartyId",
            related,
            multipart(ebxml_part(good.replace(">YES-0000806<", "> <"))),
            "lacks eb:To/eb:PartyId",
        ),
        (
            "no MessageHeader",
            related,
            multipart(ebxml_part(re.sub("<eb:MessageHeader.*</eb:MessageHeader>", "", good))),
            "SOAP:Header has no eb:MessageHeader",
        ),
        (
            "not a SOAP envelope",
            related,
            multipart(ebxml_part("<Envelope/>")),
            "the root element is 'Envelope', not a SOAP 1.1 Envelope",
        ),
        (
            "first part is not start",
            related,
            multipart(payload_part(), ebxml_part(good)),
            r"MIME part 1 \(Content-Id <payload@spine.nhs.uk>\) is not the part the "
            "Content-Type's start parameter names",
        ),
        (
            "binary envelope",
            related,
            multipart(ebxml_part(good).replace("text/xml; charset=UTF-8", "image/png")),
            "is image/png, not the text/xml ebXML envelope",
        ),
        (
            "nested multipart",
            related,
            multipart(
                ebxml_part(good),
                payload_part("--x\r\n\r\ninner\r\n--x--", 'multipart/mixed; boundary="x"'),
            ),
            "MIME part 2 .* is itself multipart",
        ),
        (
            "declared multipart",
            related,
            multipart(ebxml_part(good), payload_part(content_type='multipart/mixed; boundary="x"')),
            "MIME part 2 .* is itself multipart",
        ),
    ]


@pytest.mark.parametrize("case", range(len(bad_cases())), ids=[c[0] for c in bad_cases()])
def test_parse_message_refuses(case: int) -> None:
    _, content_type, body, message = bad_cases()[case]
    with pytest.raises(EbxmlError, match=message):
        parse_message(content_type, body)


def test_payload_that_is_not_utf8_is_refused() -> None:
    body = multipart(ebxml_part(request_envelope()), payload_part("PAYLOAD")).replace(
        b"PAYLOAD", PNG
    )
    with pytest.raises(EbxmlError, match=r"MIME part 2 .*: the HL7 payload is not UTF-8 text"):
        parse_message(CONTENT_TYPE, body)


def test_too_many_parts_is_refused_even_without_a_closing_delimiter() -> None:
    body = multipart(ebxml_part(request_envelope()), *[payload_part()] * 100)
    body = body.removesuffix(b"----=_MIME-Boundary--\r\n")
    with pytest.raises(EbxmlError, match="more than 100 MIME parts"):
        parse_message(CONTENT_TYPE, body)


def test_parse_header_alone() -> None:
    text = request_envelope()
    assert parse_header(text) == make_header()
    assert parse_header(text.encode()) == make_header()
    with pytest.raises(EbxmlError, match="DOCTYPE"):
        parse_header(EXTERNAL_ENTITY)
    with pytest.raises(EbxmlError, match="not well formed"):
        parse_header(b"\x00\x01")
    with pytest.raises(EbxmlError, match="lacks eb:MessageData/eb:Timestamp"):
        parse_header(_without(text, "Timestamp"))


def test_doctype_after_comments_and_in_utf16_is_refused() -> None:
    sneaky = "<?xml version='1.0'?><!-- hi --><?pi x?>\n" + EXTERNAL_ENTITY.split("?>", 1)[1]
    with pytest.raises(EbxmlError, match="DOCTYPE"):
        parse_header(sneaky)
    with pytest.raises(EbxmlError, match="DOCTYPE"):
        parse_header(
            EXTERNAL_ENTITY.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>').encode("utf-16")
        )


def test_doctype_text_inside_cdata_is_not_a_doctype() -> None:
    text = request_envelope().replace(
        "<SOAP:Body>", "<SOAP:Body><![CDATA[<!DOCTYPE x SYSTEM 'file:///etc/passwd'>]]>"
    )
    assert parse_header(text) == make_header()


# --- writer refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "payload", "attachments", "message"),
    [
        (make_header(cpa_id="bad\x00"), PAYLOAD, [], "CPAId holds '\\\\x00'"),
        (make_header(message_id="has space"), PAYLOAD, [], "MessageId 'has space' cannot go"),
        (make_header(message_id="<x>"), PAYLOAD, [], "cannot go in a MIME Content-Id"),
        (make_header(), "\ud800", [], "HL7 payload is not encodable as UTF-8"),
        (make_header(), "a\r\n----=_MIME-Boundary\r\nb", [], "holds the MIME boundary line"),
        (
            make_header(),
            PAYLOAD,
            [Attachment("x@y", "text/plain\r\nX-Evil: 1", "a", False)],
            "attachment 1 content_type .* is not a MIME type",
        ),
        (
            make_header(),
            PAYLOAD,
            [Attachment("x y", "text/plain", "a", False)],
            "attachment 1 content_id 'x y' cannot go",
        ),
    ],
)
def test_build_request_refuses_what_it_cannot_carry(
    header: MessageHeader, payload: str, attachments: list[Attachment], message: str
) -> None:
    with pytest.raises(EbxmlError, match=message):
        build_request(header, payload, attachments)


# --- acknowledgments, errors, faults ----------------------------------------------------------


def test_acknowledgment_answers_the_received_header() -> None:
    received = make_header()
    ack_id = new_id()
    body = build_acknowledgment(received, message_id=ack_id, timestamp="2026-01-02T03:04:05Z")
    header = parse_header(body)
    assert header.from_party_id == received.to_party_id
    assert header.to_party_id == received.from_party_id
    assert header.cpa_id == received.cpa_id
    assert header.conversation_id == received.conversation_id
    assert header.service == EBXML_SERVICE
    assert header.action == "Acknowledgment"
    assert header.message_id == ack_id
    assert header.timestamp == "2026-01-02T03:04:05Z"
    assert header.ref_to_message_id == received.message_id
    assert not header.ack_requested
    assert not header.sync_reply
    assert not header.duplicate_elimination
    ack = envelope(body).find(f"{{{NS_SOAP}}}Header/{{{NS_EB}}}Acknowledgment")
    assert ack is not None
    assert ack.get(f"{{{NS_SOAP}}}actor") == ACTOR_TO_PARTY_MSH
    assert ack.get(f"{{{NS_SOAP}}}mustUnderstand") == "1"
    assert ack.get(f"{{{NS_EB}}}version") == "2.0"
    assert ack.findtext(f"{{{NS_EB}}}Timestamp") == "2026-01-02T03:04:05Z"
    assert ack.findtext(f"{{{NS_EB}}}RefToMessageId") == received.message_id
    assert ack.findtext(f"{{{NS_EB}}}From/{{{NS_EB}}}PartyId") == received.to_party_id
    reply = classify_reply("text/xml", body)
    assert reply.kind == "acknowledgment"
    assert reply.header == header
    assert reply.errors == ()


def test_message_error_answers_the_received_header() -> None:
    received = make_header()
    errors = [
        ErrorDetail("ebxml", "ValueNotRecognized", "Error", "501319:Unknown eb:CPAId"),
        ErrorDetail("ebxml", "Inconsistent", "Warning", "a < b & c", code_context="urn:x"),
    ]
    body = build_message_error(received, errors, message_id="E1", timestamp="T1")
    root = envelope(body)
    error_list = root.find(f"{{{NS_SOAP}}}Header/{{{NS_EB}}}ErrorList")
    assert error_list is not None
    assert error_list.get(f"{{{NS_EB}}}highestSeverity") == "Error"
    assert error_list.get(f"{{{NS_SOAP}}}mustUnderstand") == "1"
    reply = classify_reply("text/xml; charset=UTF-8", body)
    assert reply.kind == "message-error"
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    assert reply.header.from_party_id == received.to_party_id
    assert reply.header.to_party_id == received.from_party_id
    assert reply.header.ref_to_message_id == received.message_id
    assert reply.header.cpa_id == received.cpa_id
    assert reply.header.conversation_id == received.conversation_id
    assert reply.header.message_id == "E1"
    assert reply.errors == (
        dataclasses.replace(errors[0], code_context=ERROR_CODE_CONTEXT),
        errors[1],
    )


def test_message_error_severity_and_emptiness() -> None:
    body = build_message_error(
        make_header(), [ErrorDetail("ebxml", "X", "Warning", "w")], message_id="E", timestamp="T"
    )
    assert b'eb:highestSeverity="Warning"' in body
    with pytest.raises(EbxmlError, match="at least one error"):
        build_message_error(make_header(), [], message_id="E", timestamp="T")


def test_soap_fault_classifies_with_its_codes() -> None:
    errors = [
        ErrorDetail("soap", "206", "Error", "Routing delivery failure", location="Not Supported"),
        ErrorDetail("soap", "208", "Error", "Failure storing memo", code_context="urn:other"),
    ]
    body = build_soap_fault(errors)
    root = envelope(body)
    assert root.findtext(f"{{{NS_SOAP}}}Body/{{{NS_SOAP}}}Fault/faultcode") == "SOAP:Server"
    assert root.findtext(f"{{{NS_SOAP}}}Body/{{{NS_SOAP}}}Fault/faultstring") == (
        "Application Exception"
    )
    assert xpath(root, "//nasp:error[1]/nasp:codeContext/text()") == [TMS_CODE_CONTEXT]
    reply = classify_reply("text/xml", body)
    assert reply.kind == "soap-fault"
    assert reply.header is None
    assert [e.code for e in reply.errors] == ["206", "208"]
    assert reply.errors == (
        dataclasses.replace(errors[0], code_context=TMS_CODE_CONTEXT),
        errors[1],
    )


# --- classify_reply ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [
        (None, b"", "empty"),
        ("text/xml", b"  \r\n", "empty"),
        ("text/plain", b"Injected fault: HTTP 503", "other"),
        (None, b"<html><body>Bad gateway</body></html>", "other"),
        ("text/xml", b"<SOAP:Envelope xmlns:SOAP='" + NS_SOAP.encode() + b"'/>", "other"),
        ("application/json", b'{"resourceType": "OperationOutcome"}', "other"),
        ("text/xml", BILLION_LAUGHS.encode(), "other"),
        ("multipart/related", b"----=_MIME-Boundary\r\n", "other"),
        (
            "text/xml",
            f"<SOAP:Envelope xmlns:SOAP='{NS_SOAP}'><SOAP:Body><SOAP:Fault><faultcode>"
            "SOAP:Client</faultcode></SOAP:Fault></SOAP:Body></SOAP:Envelope>".encode(),
            "soap-fault",
        ),
    ],
)
def test_classify_reply_kinds(content_type: str | None, body: bytes, kind: str) -> None:
    reply = classify_reply(content_type, body)
    assert reply.kind == kind
    assert reply.errors == ()


def test_classify_reply_reads_a_multipart_wrapped_envelope() -> None:
    ack = build_acknowledgment(make_header(), message_id="A", timestamp="T").decode()
    body = multipart(ebxml_part(ack), payload_part())
    reply = classify_reply(CONTENT_TYPE, body)
    assert reply.kind == "acknowledgment"
    assert reply.header is not None
    assert reply.header.message_id == "A"


def test_classify_reply_of_a_message_error_without_error_list() -> None:
    text = build_acknowledgment(make_header(), message_id="A", timestamp="T").decode()
    text = text.replace(
        "<eb:Action>Acknowledgment</eb:Action>", "<eb:Action>MessageError</eb:Action>"
    )
    reply = classify_reply("text/xml", text.encode())
    assert reply.kind == "message-error"
    assert reply.errors == ()


# --- HL7 device ids ------------------------------------------------------------------------------

WRAPPER = """<?xml version="1.0" encoding="UTF-8"?>
<RCMR_IN010000UK05 xmlns="urn:hl7-org:v3">
  <id root="{id}"/>
  <communicationFunctionRcv typeCode="RCV">
    <device classCode="DEV" determinerCode="INSTANCE">
      <id root="1.2.826.0.1285.0.2.0.107" extension="{rcv}"/>
    </device>
  </communicationFunctionRcv>
  <communicationFunctionSnd typeCode="SND">
    <device classCode="DEV" determinerCode="INSTANCE">
      <id root="2.16.840.1.113883.2.1.4.1" extension="9999999999"/>
      <id root="1.2.826.0.1285.0.2.0.107" extension="{snd}"/>
    </device>
  </communicationFunctionSnd>
</RCMR_IN010000UK05>"""


def test_extract_device_asids_from_a_wrapper() -> None:
    payload = WRAPPER.format(id=new_id(), rcv="918000000002", snd="918000000001")
    assert extract_device_asids(payload) == ("918000000001", "918000000002")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("<x/>", (None, None)),
        (PAYLOAD, (None, None)),
        (
            '<a xmlns="urn:hl7-org:v3"><communicationFunctionSnd><device>'
            '<id root="1.2.826.0.1285.0.2.0.107" extension=" 918000000005 "/>'
            "</device></communicationFunctionSnd></a>",
            ("918000000005", None),
        ),
        (
            '<h:a xmlns:h="urn:hl7-org:v3"><h:communicationFunctionRcv><h:device>'
            '<h:id root="1.2.826.0.1285.0.2.0.107" extension="918000000009"/>'
            "</h:device></h:communicationFunctionRcv></h:a>",
            (None, "918000000009"),
        ),
        (
            # Right names, wrong namespace: not HL7.
            '<a xmlns="urn:other"><communicationFunctionSnd><device>'
            '<id root="1.2.826.0.1285.0.2.0.107" extension="918000000005"/>'
            "</device></communicationFunctionSnd></a>",
            (None, None),
        ),
        (
            '<a xmlns="urn:hl7-org:v3"><communicationFunctionSnd><device>'
            '<id root="1.2.826.0.1285.0.2.0.107"/></device></communicationFunctionSnd></a>',
            (None, None),
        ),
    ],
)
def test_extract_device_asids_cases(payload: str, expected: tuple[str | None, str | None]) -> None:
    assert extract_device_asids(payload) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not xml", "the HL7 payload: XML is not well formed"),
        ("", "not well formed"),
        ("<a><b></a>", "not well formed"),
        (EXTERNAL_ENTITY, "DOCTYPE is not allowed"),
        (BILLION_LAUGHS, "DOCTYPE is not allowed"),
        ("\ud800", "not encodable"),
    ],
)
def test_extract_device_asids_refuses_bad_xml(payload: str, message: str) -> None:
    with pytest.raises(EbxmlError, match=message):
        extract_device_asids(payload)


def test_timestamp_now_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", timestamp_now())
