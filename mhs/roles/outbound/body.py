"""The JSON body of ``POST /``, read and checked as the NHS MHS adaptor does.

A body that does not fit is refused with the adaptor's wording: ``Invalid request.
Validation errors: {...}``, the problems nested by field (and list index) with
marshmallow's messages, the schema library the adaptor uses, so that clients which show or
match them see what they saw before.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mhs.messages.records import OutboundRequest
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.outbound.auth import Refused

# pydantic's error type -> marshmallow's message; {limit} is the constraint's value.
_MESSAGES = {
    "missing": "Missing data for required field.",
    "extra_forbidden": "Unknown field.",
    "string_type": "Not a valid string.",
    "bool_type": "Not a valid boolean.",
    "string_too_short": "Shorter than minimum length {limit}.",
    "string_too_long": "Longer than maximum length {limit}.",
    "too_long": "Longer than maximum length {limit}.",
    "tuple_type": "Invalid type.",
    "model_type": "Invalid input type.",
    "model_attributes_type": "Invalid input type.",
}


async def read_body(request: web.Request) -> OutboundRequest:
    """The request's body, validated; Refused (400, 413, 415) says what is wrong."""
    content_type = request.headers.get("Content-Type")
    if not content_type:
        raise Refused(400, "Missing Content-Type header")
    if request.content_type != "application/json":
        raise Refused(
            415,
            "Unsupported content type. Only application/json request bodies are supported. "
            f"Got {content_type!r}",
        )
    try:
        raw = await read_capped(request)
    except TooLarge as error:
        raise Refused(
            413, f"request body is over the {error.limit:,}-byte limit (MHS_MAX_REQUEST_BYTES)"
        ) from None
    if not raw.strip():
        raise Refused(400, "Body missing from request")
    try:
        return OutboundRequest.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise Refused(400, f"Invalid JSON request body: {errors[0]['msg']}") from None
        problems = validation_errors(errors)
        raise Refused(400, f"Invalid request. Validation errors: {problems}") from None


def validation_errors(errors: list[ErrorDetails]) -> dict[str, Any]:
    """The problems nested by location, as marshmallow reports them."""
    nested: dict[Any, Any] = {}
    for error in errors:
        location = tuple(error["loc"]) or ("_schema",)
        node = nested
        for key in location[:-1]:
            node = node.setdefault(key, {})
        context = error.get("ctx") or {}
        limit = context.get("min_length", context.get("max_length", ""))
        message = _MESSAGES.get(error["type"], error["msg"].removeprefix("Value error, "))
        node.setdefault(location[-1], []).append(message.format(limit=limit))
    return nested
