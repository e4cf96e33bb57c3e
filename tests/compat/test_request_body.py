"""The outbound request body as clients built for the NHS MHS adaptor send it: the GP2GP
adaptor's attachments (long multi-line descriptions, Office types, document ids, external
attachments) are accepted and reach the recipient; bad bodies get the adaptor's wording."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from mhs.ids import new_id

pytestmark = pytest.mark.rabbitmq

A, B = "918000000001", "918000000002"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# The GP2GP adaptor describes a document in its manifest text, over several lines.
DESCRIPTION = "\n".join(
    [
        'Filename="E39E79A2-FA96-48FF-9373-7BBCB9D036E7_discharge letter.docx"',
        f"ContentType={DOCX}",
        "Compressed=No",
        "LargeAttachment=No",
        "OriginalBase64=Yes",
        "Length=4718",
        "DomainData=X-GP2GP-Skeleton: No " + "x" * 200,
    ]
)


async def test_a_gp2gp_adaptor_body_is_accepted_and_delivered(harness_factory: Any) -> None:
    h = await harness_factory(("inbound", "spine-proxy", "worker", "outbound"))
    external_id = new_id()
    body = {
        "payload": '<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3"/>',
        "attachments": [
            {
                "is_base64": True,
                "content_type": DOCX,
                "payload": base64.b64encode(b"PK\x03\x04 a document").decode(),
                "description": DESCRIPTION,
                "document_id": "_E39E79A2-FA96-48FF-9373-7BBCB9D036E7",
            }
        ],
        "external_attachments": [
            {
                "document_id": "_0D8B5F2C-6E2B-4A4B-8C41-2A1F0F3A6A6E",
                "message_id": external_id,
                "description": 'Filename="scan.tif" ContentType=image/tiff LargeAttachment=Yes',
            }
        ],
    }
    assert len(DESCRIPTION) > 300
    message_id = new_id()
    response = await h.send(A, ods_code="A80002", message_id=message_id, body=orjson.dumps(body))
    assert response.status == 202, await response.text()
    delivered = orjson.loads((await h.take(h.settings.inbound_queue(B))).body)
    manifest = delivered["ebXML"]
    assert f'xlink:href="mid:{external_id}"' in manifest
    assert 'eb:id="_E39E79A2-FA96-48FF-9373-7BBCB9D036E7"' in manifest
    assert "LargeAttachment=Yes" in manifest
    [attachment] = delivered["attachments"]
    assert attachment["content_type"] == DOCX
    assert base64.b64decode(attachment["payload"]) == b"PK\x03\x04 a document"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"payload": "<x/>", "attachments": [{"is_base64": False, "payload": "a"}]},
            "400: Invalid request. Validation errors: {'attachments': {0: "
            "{'content_type': ['Missing data for required field.'], "
            "'description': ['Missing data for required field.']}}}",
        ),
        (
            {"payload": "<x/>", "external_attachments": [{"description": "d"}]},
            "400: Invalid request. Validation errors: {'external_attachments': {0: "
            "{'message_id': ['Missing data for required field.']}}}",
        ),
        (
            {"payload": ""},
            "400: Invalid request. Validation errors: {'payload': "
            "['Shorter than minimum length 1.']}",
        ),
    ],
)
async def test_a_bad_body_gets_the_adaptors_wording_and_its_correlation_id(
    harness_factory: Any, body: dict[str, Any], expected: str
) -> None:
    h = await harness_factory(("outbound",))
    correlation_id = new_id().lower()  # echoed as sent
    response = await h.send(
        A, ods_code="A80002", body=orjson.dumps(body), headers={"Correlation-Id": correlation_id}
    )
    assert response.status == 400
    assert await response.text() == expected
    assert response.headers["Correlation-Id"] == correlation_id
    assert response.headers["Content-Type"].startswith("text/plain")
    assert await h.depth(h.settings.outbound_queue) == 0
