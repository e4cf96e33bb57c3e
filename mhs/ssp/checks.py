"""The SSP's checks, in the order the simulator applies them (see docs/spine-proxy.md)."""

from __future__ import annotations

from dataclasses import dataclass

from mhs.directory import Directory
from mhs.ids import is_asid, is_uuid
from mhs.ssp.outcome import Refusal


@dataclass(frozen=True, slots=True)
class SspRequest:
    """The Ssp-* headers of one request; None where the header is missing."""

    trace_id: str | None
    from_asid: str | None
    to_asid: str | None
    interaction_id: str | None


def check_request(directory: Directory, request: SspRequest) -> Refusal | None:
    """None if Spine would pass the request on, else why it refuses it.

    Order: headers present and well formed; interaction known; receiver registered;
    sender registered and accredited; receiver accredited; mutual data sharing agreement.
    """
    missing = [
        name
        for name, value in (
            ("Ssp-TraceID", request.trace_id),
            ("Ssp-From", request.from_asid),
            ("Ssp-To", request.to_asid),
            ("Ssp-InteractionID", request.interaction_id),
        )
        if not value
    ]
    if missing:
        return Refusal.bad_request(f"missing header(s): {', '.join(missing)}")
    assert request.trace_id and request.from_asid and request.to_asid and request.interaction_id
    if not is_uuid(request.trace_id):
        return Refusal.bad_request(f"Ssp-TraceID {request.trace_id!r} is not a UUID")
    for name, asid in (("Ssp-From", request.from_asid), ("Ssp-To", request.to_asid)):
        if not is_asid(asid):
            return Refusal.bad_request(f"{name} {asid!r} is not a 12-digit ASID")
    if directory.interaction(request.interaction_id) is None:
        return Refusal.bad_request(f"Ssp-InteractionID {request.interaction_id!r} is not known")
    receiver = directory.by_asid(request.to_asid)
    if receiver is None:
        return Refusal.bad_request(f"Ssp-To {request.to_asid} is not a registered ASID")
    sender = directory.by_asid(request.from_asid)
    if sender is None or not sender.accredited_for(request.interaction_id):
        return Refusal.sender_not_accredited(request.from_asid)
    if not receiver.accredited_for(request.interaction_id):
        return Refusal.receiver_not_accredited(request.to_asid)
    if not directory.has_agreement(sender.ods_code, receiver.ods_code):
        return Refusal.no_agreement(request.from_asid, request.to_asid)
    return None
