"""FHIR formats: JSON or XML as _format, Accept and Content-Type ask, and FHIR XML output."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhs.ebxml.safexml import parse_xml
from mhs.gpconnect.fhir import NS_FHIR, negotiate, render, to_xml
from mhs.ssp import Refusal, operation_outcome


@pytest.mark.parametrize(
    ("accept", "format_", "content_type", "expected"),
    [
        (None, None, None, "json"),
        ("application/fhir+xml", None, None, "xml"),
        ("application/fhir+json", None, None, "json"),
        ("application/xml+fhir", None, None, "xml"),
        ("text/xml;q=0.4, application/fhir+json;q=0.9", None, None, "json"),
        ("application/fhir+json;q=0, application/fhir+xml", None, None, "xml"),
        ("*/*", None, None, "json"),
        ("text/html", None, None, None),
        ("application/fhir+json", "xml", None, "xml"),  # _format overrides Accept
        ("application/fhir+xml", "application/fhir+json", None, "json"),
        (None, "text/csv", None, None),
        (None, None, "application/fhir+xml; charset=utf-8", "xml"),  # follows Content-Type
        (None, None, 'multipart/related; boundary="x"', "json"),
        ("  ", None, "application/fhir+xml", "xml"),
    ],
)
def test_negotiation(
    accept: str | None, format_: str | None, content_type: str | None, expected: str | None
) -> None:
    assert negotiate(accept, format_, content_type) == expected


def test_operation_outcome_in_xml_carries_the_same_facts() -> None:
    refusal = Refusal.sender_not_accredited("918000000001")
    body, content_type = render(operation_outcome(refusal), "xml")
    assert content_type == "application/fhir+xml; charset=utf-8"
    root = parse_xml(body, "test")
    ns = {"f": NS_FHIR}
    assert root.tag == f"{{{NS_FHIR}}}OperationOutcome"
    assert root.xpath("f:issue/f:severity/@value", namespaces=ns) == ["error"]
    assert root.xpath("f:issue/f:code/@value", namespaces=ns) == ["forbidden"]
    coding = "f:issue/f:details/f:coding/"
    assert root.xpath(coding + "f:code/@value", namespaces=ns) == ["403"]
    assert root.xpath(coding + "f:display/@value", namespaces=ns) == [refusal.token]
    assert root.xpath("f:meta/f:profile/@value", namespaces=ns)


def test_nested_resources_lists_and_extension_urls() -> None:
    root = parse_xml(
        to_xml(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "active": True}}] * 2,
                "extension": [{"url": "https://x", "valueString": "y"}],
            }
        ),
        "test",
    )
    ns = {"f": NS_FHIR}
    assert root.xpath("f:entry/f:resource/f:Patient/f:active/@value", namespaces=ns) == [
        "true",
        "true",
    ]
    assert root.xpath("f:extension/@url", namespaces=ns) == ["https://x"]


@given(st.text(max_size=200))
def test_any_text_is_written_as_well_formed_xml(text: str) -> None:
    body = to_xml({"resourceType": "OperationOutcome", "issue": [{"diagnostics": text}]})
    parse_xml(body, "test")


@given(st.text(max_size=80), st.text(max_size=30), st.text(max_size=60))
def test_negotiation_never_fails(accept: str, format_: str, content_type: str) -> None:
    assert negotiate(accept, format_, content_type) in ("json", "xml", None)
