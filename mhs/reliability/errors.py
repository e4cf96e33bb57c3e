"""Why a message was given up, in the NHS MHS adaptor's error JSON: the ``errors`` items of
the 500 it answers when Spine refused a message, and that body itself.

The adaptor knows only Spine's errors (``soap_fault``, ``ebxml_error``). We also give up
where Spine sent none (retries exhausted on transport errors, an SSP refusal, the persist
duration passed); such a give-up is one ``delivery_failure`` item whose ebMS error code
says what happened and whose description is our reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from mhs.ebxml import ERROR_CODE_CONTEXT, TMS_CODE_CONTEXT, ErrorDetail

ErrorType = Literal["soap_fault", "ebxml_error", "delivery_failure"]
DELIVERY_FAILURE: ErrorType = "delivery_failure"
# The adaptor's log keys for its SOAP fault and ebXML error handlers; ours for the rest.
PROCESS_KEYS: dict[str, str] = {
    "soap_fault": "SOAP_ERROR_HANDLER0002",
    "ebxml_error": "EBXML_ERROR_HANDLER0005",
    DELIVERY_FAILURE: "MHS_DELIVERY_FAILURE",
}
SPINE_ERROR_MESSAGE = "Error(s) received from Spine. Contact system administrator."
DELIVERY_FAILURE_MESSAGE = "The message could not be delivered. Contact system administrator."

_ERROR_TYPES: dict[str, ErrorType] = {"soap": "soap_fault", "ebxml": "ebxml_error"}
_CODE_CONTEXTS = {"soap": TMS_CODE_CONTEXT, "ebxml": ERROR_CODE_CONTEXT}


def delivery_failure(outcome: str, reason: str) -> ErrorDetail:
    """The ebMS error for a give-up Spine sent no error for: ``TimeToLiveExpired`` once
    the persist duration passed, else ``DeliveryFailure``; ``reason`` as its description."""
    code = "TimeToLiveExpired" if outcome == "expired" else "DeliveryFailure"
    return ErrorDetail(kind="ebxml", code=code, severity="Error", description=reason)


def error_items(
    errors: Sequence[ErrorDetail], *, outcome: str, reason: str
) -> list[dict[str, str]]:
    """The adaptor's ``errors`` items: one per Spine error, or without any, the one
    ``delivery_failure`` item that says what happened (``outcome``, ``reason``)."""
    if errors:
        return [_item(error, _ERROR_TYPES[error.kind]) for error in errors]
    return [_item(delivery_failure(outcome, reason), DELIVERY_FAILURE)]


def _item(error: ErrorDetail, error_type: ErrorType) -> dict[str, str]:
    item = {
        "codeContext": error.code_context or _CODE_CONTEXTS[error.kind],
        "errorCode": error.code,
        "severity": error.severity,
    }
    if error.location:
        item["location"] = error.location
    item["description"] = error.description
    item["errorType"] = error_type
    return item


def error_body(items: Sequence[Mapping[str, str]]) -> dict[str, object]:
    """The adaptor's 500 body around ``items``: its message and process key follow the
    first item's ``errorType`` (a Spine error, or our ``delivery_failure``)."""
    first = items[0].get("errorType", DELIVERY_FAILURE) if items else DELIVERY_FAILURE
    from_spine = first in ("soap_fault", "ebxml_error")
    return {
        "error_message": SPINE_ERROR_MESSAGE if from_spine else DELIVERY_FAILURE_MESSAGE,
        "process_key": PROCESS_KEYS.get(first, PROCESS_KEYS[DELIVERY_FAILURE]),
        "errors": [dict(item) for item in items],
    }
