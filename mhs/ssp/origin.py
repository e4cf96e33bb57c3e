"""Whether a system may request for the organisation a GP Connect JWT names as originating.

``Ssp-From`` is the originating organisation's ASID; only a portal registered under the
older host rule sends its one ASID for each participating organisation
(spine-messaging.md §6).
"""

from __future__ import annotations

from mhs.directory import Party


def not_originating(sender: Party, named: str) -> str:
    """Why ``sender`` may not send a request whose requesting_organization is ``named``."""
    shown = repr(named[:40])
    if sender.kind == "portal" and named not in sender.portal:
        return (
            f"the JWT's requesting_organization {shown} does not participate in the portal "
            f"of ASID {sender.asid} (participants: {', '.join(sorted(sender.portal))})"
        )
    if sender.kind == "portal":
        return (
            f"ASID {sender.asid} belongs to {sender.ods_code} and this portal gives each "
            f"organisation its own ASID: a request for {shown} is sent with {shown}'s ASID, "
            "never the provisioning organisation's"
        )
    return (
        f"the JWT's requesting_organization names {shown}, not {sender.ods_code}, the "
        f"organisation of ASID {sender.asid}: requests carry their originating organisation, "
        "and Ssp-From is its ASID"
    )
