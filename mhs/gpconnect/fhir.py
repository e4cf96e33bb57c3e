"""FHIR wire formats: choosing JSON or XML as GP Connect asks, and writing FHIR XML."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, cast

import orjson
from lxml import etree

FhirFormat = Literal["json", "xml"]
NS_FHIR = "http://hl7.org/fhir"
CONTENT_TYPES: dict[FhirFormat, str] = {
    "json": "application/fhir+json",
    "xml": "application/fhir+xml",
}
_NAMES: dict[str, FhirFormat] = {
    "json": "json",
    "application/json": "json",
    "application/fhir+json": "json",
    "application/json+fhir": "json",
    "*/*": "json",
    "application/*": "json",
    "xml": "xml",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/fhir+xml": "xml",
    "application/xml+fhir": "xml",
}
# Characters XML 1.0 cannot hold; error texts may quote hostile input.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# In FHIR XML these are attributes of their element, not child elements.
_ATTRIBUTE_KEYS = frozenset({"url"})
_ATTRIBUTE_PARENTS = frozenset({"extension", "modifierExtension"})


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _quality(value: str) -> float:
    for param in value.split(";")[1:]:
        name, _, number = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(number)
            except ValueError:
                return 0.0
    return 1.0


def negotiate(
    accept: str | None, format_param: str | None, content_type: str | None
) -> FhirFormat | None:
    """The response format: ``_format`` overrides ``Accept``; with neither, the request's
    Content-Type; with nothing at all, JSON. None when what was asked for is neither."""
    if format_param:
        return _NAMES.get(_media_type(format_param))
    if accept and accept.strip():
        ranges = [r for r in accept.split(",") if r.strip()]
        ranked = sorted(ranges, key=_quality, reverse=True)
        for item in ranked:
            if _quality(item) > 0 and (found := _NAMES.get(_media_type(item))) is not None:
                return found
        return None
    if content_type:
        return _NAMES.get(_media_type(content_type), "json")
    return "json"


def _tag(name: str) -> str:
    return f"{{{NS_FHIR}}}{name}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _add(parent: etree._Element, key: str, value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _add(parent, key, item)
        return
    element = etree.SubElement(parent, _tag(key))
    if isinstance(value, Mapping):
        if "resourceType" in value:
            _fill(etree.SubElement(element, _tag(str(value["resourceType"]))), value)
        else:
            _fill(element, value, attributes=key in _ATTRIBUTE_PARENTS)
    else:
        element.set("value", _text(value))


def _fill(element: etree._Element, data: Mapping[str, Any], *, attributes: bool = False) -> None:
    for key, value in data.items():
        if key == "resourceType":
            continue
        if attributes and key in _ATTRIBUTE_KEYS and not isinstance(value, Mapping | list):
            element.set(key, _text(value))
        else:
            _add(element, key, value)


def to_xml(resource: Mapping[str, Any]) -> bytes:
    """A FHIR resource given as its JSON form, written as FHIR XML (the same element order)."""
    root = etree.Element(_tag(str(resource["resourceType"])), nsmap=cast(Any, {None: NS_FHIR}))
    _fill(root, resource)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def render(resource: Mapping[str, Any], fmt: FhirFormat) -> tuple[bytes, str]:
    """The body and Content-Type for ``resource`` in ``fmt``."""
    body = to_xml(resource) if fmt == "xml" else orjson.dumps(resource)
    return body, CONTENT_TYPES[fmt] + "; charset=utf-8"
