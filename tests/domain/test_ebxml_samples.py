"""Conformance against real Spine wire samples (MHS_SAMPLES_DIR, see tests/conftest.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mhs.ebxml import (
    ACTOR_TO_PARTY_MSH,
    ERROR_CODE_CONTEXT,
    TMS_CODE_CONTEXT,
    EbxmlError,
    EbxmlMessage,
    ErrorDetail,
    classify_reply,
    extract_device_asids,
    parse_header,
    parse_message,
    peek_header,
)

# What the HTTP request carrying a messages/*.msg body would have said (NHS adaptor form).
CONTENT_TYPE = (
    'multipart/related; boundary="--=_MIME-Boundary"; type=text/xml; start=ebXMLHeader@spine.nhs.uk'
)
MESSAGE_ID = "C614484E-4B10-499A-9ACD-5D645CFACF61"
ATTACHMENT_TEXT_ID = "8F1D7DE1-02AB-48D7-A797-A947B09F347F@spine.nhs.uk"
ATTACHMENT_PNG_ID = "64A73E03-30BD-4231-9959-0C4B54400345@spine.nhs.uk"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def load_msg(path: Path, *, crlf: bool = False) -> bytes:
    """A .msg body with {{ebxml}} filled from the matching .ebxml file."""
    text = path.read_text(encoding="utf-8")
    if "{{ebxml}}" in text:
        text = text.replace("{{ebxml}}", path.with_suffix(".ebxml").read_text(encoding="utf-8"))
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


def parse_sample(samples_dir: Path, name: str, *, crlf: bool = False) -> EbxmlMessage:
    return parse_message(CONTENT_TYPE, load_msg(samples_dir / name, crlf=crlf))


GOOD_REQUESTS = [
    "messages/ebxml_request.msg",
    "messages/ebxml_request_multiple_attachments.msg",
    "messages/ebxml_request_no_ack_requested.msg",
    "messages/ebxml_request_no_duplicate_elimination.msg",
    "messages/ebxml_request_no_payload.msg",
    "messages/ebxml_request_no_soap_actor.msg",
    "messages/ebxml_request_no_sync_reply.msg",
    "messages/ebxml_request_one_attachment.msg",
    "messages/ebxml_request_one_attachment_application_xml_content_type.msg",
    # A part whose headers run straight into its body (no blank line): a MIME defect the
    # NHS adaptor logs and tolerates, and so do we.
    "messages/ebxml_request_payload_defect.msg",
    "inbound/ebxml_request.msg",
    "inbound/ebxml_request_unintended.msg",
    "inbound/ebxml_unknown_ref_to.msg",
    "inbound/ebxml_unsolicited.msg",
    "inbound/ebxml_no_reference.msg",
]


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("name", GOOD_REQUESTS)
def test_good_requests_parse(samples_dir: Path, name: str, crlf: bool) -> None:
    message = parse_sample(samples_dir, name, crlf=crlf)
    header = message.header
    assert header.from_party_id == "YES-0000806"
    assert header.cpa_id == "S1001A1630"
    assert header.conversation_id == "10F5A436-1913-43F0-9F18-95EA0E43E61A"
    assert header.service == "urn:nhs:names:services:psis"
    assert header.action == "MCCI_IN010000UK13"
    assert header.message_id == MESSAGE_ID
    assert header.timestamp == "2019-05-04T20:55:16Z"
    assert header.ack_requested == ("no_ack_requested" not in name)
    assert header.duplicate_elimination == ("no_duplicate_elimination" not in name)
    assert header.sync_reply == ("no_sync_reply" not in name)
    assert message.ebxml.lstrip().startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert peek_header(CONTENT_TYPE, load_msg(samples_dir / name, crlf=crlf)) == header


def test_request_exact_values(samples_dir: Path) -> None:
    message = parse_sample(samples_dir, "messages/ebxml_request.msg")
    assert message.header.to_party_id == "A91424-9199121"
    assert message.header.ref_to_message_id == "F106022D-758B-49A9-A80A-8FF211C32A43"
    assert message.header.ack_actor == ACTOR_TO_PARTY_MSH
    assert message.payload == '<hl7:MCCI_IN010000UK13 xmlns:hl7="urn:hl7-org:v3"/>'
    assert message.attachments == ()
    ebxml = (samples_dir / "messages/ebxml_request.ebxml").read_text(encoding="utf-8")
    # The envelope comes back as sent (the line break before the boundary is the boundary's).
    assert message.ebxml == ebxml


def test_inbound_party_and_reference_values(samples_dir: Path) -> None:
    request = parse_sample(samples_dir, "inbound/ebxml_request.msg").header
    assert request.to_party_id == "FROM_PARTY_ID"
    assert request.ref_to_message_id == "B4D38C15-4981-4366-BDE9-8F56EDC4AB72"
    assert parse_sample(samples_dir, "inbound/ebxml_request_unintended.msg").header.to_party_id == (
        "NOT_US"
    )
    unknown = parse_sample(samples_dir, "inbound/ebxml_unknown_ref_to.msg").header
    assert unknown.ref_to_message_id == "7A5BCD85-BE30-469B-B584-B26EA71FD377"
    assert (
        parse_sample(samples_dir, "inbound/ebxml_unsolicited.msg").header.ref_to_message_id is None
    )
    assert (
        parse_sample(samples_dir, "inbound/ebxml_no_reference.msg").header.ref_to_message_id is None
    )


def test_no_soap_actor_and_no_payload(samples_dir: Path) -> None:
    no_actor = parse_sample(samples_dir, "messages/ebxml_request_no_soap_actor.msg")
    assert no_actor.header.ack_requested
    assert no_actor.header.ack_actor is None
    no_payload = parse_sample(samples_dir, "messages/ebxml_request_no_payload.msg")
    assert no_payload.payload is None
    assert no_payload.attachments == ()


def test_payload_defect_is_tolerated(samples_dir: Path) -> None:
    message = parse_sample(samples_dir, "messages/ebxml_request_payload_defect.msg")
    assert message.payload == "mock-payload"


@pytest.mark.parametrize(
    "name",
    [
        "messages/ebxml_request_one_attachment.msg",
        "messages/ebxml_request_one_attachment_application_xml_content_type.msg",
        "inbound/ebxml_unsolicited.msg",
        "inbound/ebxml_unknown_ref_to.msg",
    ],
)
def test_one_text_attachment(samples_dir: Path, name: str) -> None:
    message = parse_sample(samples_dir, name)
    assert len(message.attachments) == 1
    attachment = message.attachments[0]
    assert attachment.content_id == ATTACHMENT_TEXT_ID
    assert attachment.content_type == "text/plain"
    assert attachment.payload == "Some payload"
    assert not attachment.is_base64
    assert attachment.description == "Some description"


def test_multiple_attachments(samples_dir: Path) -> None:
    message = parse_sample(
        samples_dir, "messages/ebxml_request_multiple_attachments.msg", crlf=True
    )
    assert [(a.content_id, a.content_type, a.is_base64) for a in message.attachments] == [
        (ATTACHMENT_TEXT_ID, "text/plain", False),
        (ATTACHMENT_PNG_ID, "image/png", True),
    ]
    assert message.attachments[0].payload == "Some payload"
    assert message.attachments[1].payload == PNG
    assert base64.b64decode(message.attachments[1].payload).startswith(b"\x89PNG")
    assert [a.description for a in message.attachments] == [
        "Some description",
        "Another description",
    ]


@pytest.mark.parametrize(
    ("name", "content_type", "message"),
    [
        # The body is the single word "Message": no MIME part at all.
        ("messages/ebxml_request_no_header.msg", CONTENT_TYPE, "no MIME part delimited"),
        # Part 1 is a base64 PNG where the SOAP envelope must be.
        (
            "messages/ebxml_request_invalid_binary_ebxml_header.msg",
            CONTENT_TYPE,
            "MIME part 1 .* is image/png, not the text/xml ebXML envelope",
        ),
        # The HL7 part is a PNG: not text, which the NHS adaptor refuses too.
        (
            "messages/ebxml_request_invalid_binary_hl7_payload.msg",
            CONTENT_TYPE,
            "MIME part 2 .*: the HL7 payload is not UTF-8 text",
        ),
        # The same PNG labelled application/xml: the label does not make it text.
        (
            "messages/ebxml_request_invalid_application_xml_binary_hl7_payload.msg",
            CONTENT_TYPE,
            "MIME part 2 .*: the HL7 payload is not UTF-8 text",
        ),
        # A synchronous SOAP request, sent as text/xml: not an ebXML multipart message.
        ("messages/soap_request_with_defect.msg", "text/xml", "is not multipart"),
        ("messages/soap_request_with_defect.msg", CONTENT_TYPE, "no MIME part delimited"),
    ],
)
def test_defective_requests_are_refused(
    samples_dir: Path, name: str, content_type: str, message: str
) -> None:
    with pytest.raises(EbxmlError, match=message):
        parse_message(content_type, load_msg(samples_dir / name))


def test_binary_hl7_payload_still_has_a_readable_header(samples_dir: Path) -> None:
    # The proxy only needs the header, which is fine; only the payload is broken.
    body = load_msg(samples_dir / "messages/ebxml_request_invalid_binary_hl7_payload.msg")
    assert peek_header(CONTENT_TYPE, body).message_id == MESSAGE_ID


def test_header_files(samples_dir: Path) -> None:
    header = parse_header((samples_dir / "messages/ebxml_header.xml").read_bytes())
    assert header.from_party_id == "YES-0000806"
    assert header.to_party_id == "A91424-9199121"
    assert header.message_id == MESSAGE_ID
    with pytest.raises(
        EbxmlError,
        match=r"lacks eb:From/eb:PartyId, eb:To/eb:PartyId, eb:CPAId, eb:ConversationId, "
        "eb:Service, eb:Action, eb:MessageData/eb:MessageId, eb:MessageData/eb:Timestamp$",
    ):
        parse_header((samples_dir / "messages/ebxml_header_empty.xml").read_text())


UNKNOWN_CPA = ErrorDetail(
    "ebxml", "ValueNotRecognized", "Error", "501319:Unknown eb:CPAId", ERROR_CODE_CONTEXT
)
OTHER_UNKNOWN = ErrorDetail(
    "ebxml", "ValueNotRecognized", "Error", "501320:Unknown something else", ERROR_CODE_CONTEXT
)


def soap_error(
    code: str, description: str = "System failure to process message - default"
) -> ErrorDetail:
    return ErrorDetail("soap", code, "Error", description, TMS_CODE_CONTEXT, "Not Supported")


@pytest.mark.parametrize(
    ("name", "kind", "errors"),
    [
        ("errors/ebxml_response_error_single.xml", "message-error", (UNKNOWN_CPA,)),
        ("errors/ebxml_response_error_multiple.xml", "message-error", (UNKNOWN_CPA, OTHER_UNKNOWN)),
        ("messages/ebxml_response_error_single.xml", "message-error", (UNKNOWN_CPA,)),
        (
            "messages/ebxml_response_error_multiple.xml",
            "message-error",
            (UNKNOWN_CPA, OTHER_UNKNOWN),
        ),
        # An ErrorList with no Error in it is still a MessageError.
        ("messages/ebxml_response_error_empty.xml", "message-error", ()),
        ("errors/soapfault_response_single_error.xml", "soap-fault", (soap_error("200"),)),
        (
            "errors/soapfault_response_multiple_errors.xml",
            "soap-fault",
            (soap_error("200"), soap_error("201", "The message is not well formed")),
        ),
        ("messages/soapfault_response_single_error.xml", "soap-fault", (soap_error("200"),)),
        (
            "messages/soapfault_response_multiple_errors.xml",
            "soap-fault",
            (soap_error("200"), soap_error("201", "The message is not well formed")),
        ),
        ("messages/soapfault_response_single_error_206.xml", "soap-fault", (soap_error("206"),)),
        ("messages/soapfault_response_single_error_208.xml", "soap-fault", (soap_error("208"),)),
        ("messages/soapfault_response_single_error_300.xml", "soap-fault", (soap_error("300"),)),
        # A fault whose detail is empty: still a fault, with nothing to retry on.
        ("messages/soapfault_response_empty.xml", "soap-fault", ()),
        ("inbound/ebxml_ack.xml", "acknowledgment", ()),
        (
            "inbound/ebxml_nack.xml",
            "message-error",
            (
                ErrorDetail(
                    "ebxml", "ValueNotRecognized", "Error", "501314:Invalid To Party Type attribute"
                ),
            ),
        ),
        (
            "fake-spine/configured_responses/async_reliable_success_response.xml",
            "acknowledgment",
            (),
        ),
        (
            "fake-spine/configured_responses/ebxml_fault_single_error.xml",
            "message-error",
            (UNKNOWN_CPA,),
        ),
        (
            "fake-spine/configured_responses/soap_fault_single_error.xml",
            "soap-fault",
            (soap_error("200"),),
        ),
        (
            "fake-spine/configured_responses/soap_fault_that_should_be_retried.xml",
            "soap-fault",
            (soap_error("206"),),
        ),
        # A sync (WS-Addressing) response: SOAP, but not ebXML and not a fault.
        ("fake-spine/vnp_responses/sync_outbound_response.mustache", "other", ()),
        ("inbound/sync_message.xml", "other", ()),
    ],
)
def test_replies_classify(
    samples_dir: Path, name: str, kind: str, errors: tuple[ErrorDetail, ...]
) -> None:
    reply = classify_reply("text/xml", (samples_dir / name).read_bytes())
    assert reply.kind == kind
    assert reply.errors == errors


def test_message_error_and_ack_headers(samples_dir: Path) -> None:
    error = classify_reply(
        None, (samples_dir / "errors/ebxml_response_error_single.xml").read_bytes()
    )
    assert error.header is not None
    assert error.header.from_party_id == "YEA-801248"
    assert error.header.to_party_id == "RHM-810292"
    assert error.header.cpa_id == "S2001919A2011852"
    assert error.header.message_id == "97111C1C-48B8-B2FA-DE13-B64B2ADEB391"
    assert error.header.ref_to_message_id == "19D02203-3CBE-11E3-9D44-9D223D2F4DB0"
    ack = classify_reply("text/xml", (samples_dir / "inbound/ebxml_ack.xml").read_bytes())
    assert ack.header is not None
    assert ack.header.action == "Acknowledgment"
    assert ack.header.ref_to_message_id == MESSAGE_ID


def test_async_reliable_outbound_response_is_an_acknowledgment(samples_dir: Path) -> None:
    path = samples_dir / "fake-spine/vnp_responses/async_reliable_outbound_response.mustache"
    body = path.read_text(encoding="utf-8").replace("{{message_id}}", "ABC").encode()
    reply = classify_reply("text/xml", body)
    assert reply.kind == "acknowledgment"
    assert reply.header is not None
    assert reply.header.message_id == "ABC"


FILLED = {
    "{{message_id}}": "5A8E2AA4-5F6A-4A7F-9D34-4E0B1F8E1C11",
    "{{ref_to_message_id}}": "0F2C3C41-8C7E-4E2E-A3B4-5B6B2D1E7F90",
    "{{conversation_id}}": "9D8B7C6A-5F4E-4D3C-B2A1-0F9E8D7C6B5A",
    "{{to_party_id}}": "A91424-9199121",
}


def fill(text: str) -> str:
    for placeholder, value in FILLED.items():
        text = text.replace(placeholder, value)
    assert "{{" not in text
    return text


def test_spine_post_capture_parses_with_its_own_content_type(samples_dir: Path) -> None:
    capture = (samples_dir / "fake-spine/vnp_responses/async_reliable_inbound.mustache").read_text()
    head, body = fill(capture).split("====== BODY =======\n", 1)
    http_headers = dict(line.split(": ", 1) for line in head.splitlines()[2:] if ": " in line)
    content_type = http_headers["Content-Type"]
    assert 'start="<ebXMLHeader@spine.nhs.uk>"' in content_type
    for crlf in (False, True):
        wire = (body.replace("\n", "\r\n") if crlf else body).encode()
        message = parse_message(content_type, wire)
        header = message.header
        assert header.from_party_id == "YES-0000806"
        assert header.to_party_id == FILLED["{{to_party_id}}"]
        assert header.cpa_id == "S918999404212"
        assert header.conversation_id == FILLED["{{conversation_id}}"]
        assert header.action == "MCCI_IN010000UK13"
        assert header.message_id == FILLED["{{message_id}}"]
        assert header.ref_to_message_id == FILLED["{{ref_to_message_id}}"]
        assert header.timestamp == "2020-03-19T14:05:22Z"
        assert header.duplicate_elimination
        assert header.ack_requested
        assert header.ack_actor == ACTOR_TO_PARTY_MSH
        assert header.sync_reply
        assert message.payload is not None
        assert message.attachments == ()
        assert extract_device_asids(message.payload) == ("227319907548", "918999198975")
        assert peek_header(content_type, wire) == header


def test_async_express_inbound_template_parses(samples_dir: Path) -> None:
    text = (samples_dir / "fake-spine/vnp_responses/async_express_inbound.mustache").read_text()
    message = parse_message(CONTENT_TYPE, fill(text).encode())
    assert message.header.action == "QUPC_IN160102UK05"
    assert message.header.conversation_id == "1"
    assert not message.header.ack_requested
    assert not message.header.duplicate_elimination
    assert message.header.sync_reply
    assert message.payload is not None
    # The sender's device id carries a party key, not an ASID; callers check is_asid().
    assert extract_device_asids(message.payload) == ("YES-0000806", "918999198975")


def test_device_asids_in_sync_soap_samples(samples_dir: Path) -> None:
    defect = (samples_dir / "messages/soap_request_with_defect.msg").read_text()
    assert extract_device_asids(defect) == ("918999199111", "000009199092")
    sync = (samples_dir / "inbound/sync_message.xml").read_text()
    sync = sync.replace("{{{toASID}}}", "918999198975").replace("{{{fromASID}}}", "928942012545")
    assert extract_device_asids(sync) == ("928942012545", "918999198975")
    response = (
        samples_dir / "fake-spine/vnp_responses/sync_outbound_response.mustache"
    ).read_text()
    assert extract_device_asids(fill(response)) == ("928942012545", "918999198975")
