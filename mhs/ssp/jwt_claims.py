"""The GP Connect audit JWT: unsigned, its claims checked as the reference lists them.

pyjwt reads the token's parts; every refusal text is ours, so callers learn which rule
failed rather than which library call did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
import orjson

from mhs.gpconnect.interactions import GpcInteraction
from mhs.ids import ODS_SYSTEM
from mhs.ssp.outcome import Refusal

TimingMode = Literal["strict", "lenient"]

SDS_USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
LIFETIME_S = 300
REQUIRED_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "reason_for_request",
    "requested_scope",
    "requesting_device",
    "requesting_organization",
    "requesting_practitioner",
)
REASONS = frozenset({"directcare", "migration"})
CONFIDENTIALITY_SCOPES = frozenset({"conf/N", "conf/R"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_SCOPE = re.compile(r"(patient|organization)/\*\.(read|write)")
_HEADER_KEYS = frozenset({"alg", "typ"})
_STRING_CLAIMS = ("iss", "sub", "aud", "reason_for_request", "requested_scope")
_RESOURCE_CLAIMS = (
    ("requesting_device", "Device"),
    ("requesting_organization", "Organization"),
    ("requesting_practitioner", "Practitioner"),
)


class JwtRefused(ValueError):
    """The token breaks a rule; ``refusal`` is the answer to give."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """How strictly token times are read.

    ``strict`` is the provider test suite and reference provider: exp must be exactly
    iat + 300, iat no later than now + ``leeway_s``, exp not passed. ``lenient`` is the
    2019 policy decision: iat is not checked against the clock, exp must follow iat by at
    most 300 s and not have passed more than ``leeway_s`` ago (clock skew).
    """

    timing: TimingMode = "strict"
    leeway_s: float = 600.0


def _bad(detail: str) -> JwtRefused:
    return JwtRefused(Refusal.bad_request(f"Authorization: {detail}"))


def _invalid(detail: str) -> JwtRefused:
    return JwtRefused(Refusal.invalid_resource(f"Authorization: {detail}"))


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <JWT>`` header; JwtRefused if there is none."""
    if authorization is None or not authorization.strip():
        raise _bad("a Bearer JWT is required")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _bad("must be 'Bearer <JWT>'")
    return token.strip()


def decode_unsigned(token: str) -> dict[str, Any]:
    """The claims of an unsigned JWT (``alg: none``, trailing dot), its form checked."""
    if not token.isascii():
        raise _bad("the JWT holds characters that are not base64url")
    parts = token.split(".")
    if len(parts) != 3:
        raise _bad(f"the JWT must be three base64url parts joined by dots, found {len(parts)}")
    if parts[2]:
        raise _bad("the JWT must be unsigned: nothing may follow its last dot")
    for name, part in (("header", parts[0]), ("claims", parts[1])):
        if "=" in part:
            raise _bad(f"the JWT {name} is padded with '=': base64url here has no padding")
        if _BASE64URL.fullmatch(part) is None:
            raise _bad(f"the JWT {name} is not base64url ('+' and '/' are not allowed)")
    try:
        complete = jwt.PyJWS().decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _bad("the JWT header is not base64url-encoded JSON") from None
    header = complete["header"]
    extra = sorted(set(header) - _HEADER_KEYS)
    if extra:
        raise _bad(f"the JWT header may hold only alg and typ, not {', '.join(extra)}")
    if header.get("alg") != "none":
        raise _bad(f"the JWT alg must be 'none', got {header.get('alg')!r}")
    if header.get("typ") != "JWT":
        raise _bad(f"the JWT typ must be 'JWT', got {header.get('typ')!r}")
    try:
        claims = orjson.loads(complete["payload"])
    except orjson.JSONDecodeError:
        raise _bad("the JWT claims are not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise _bad("the JWT claims are not a JSON object")
    return claims


def encode_unsigned(claims: Mapping[str, Any]) -> str:
    """An unsigned JWT (``{"alg":"none","typ":"JWT"}``, trailing dot) for ``claims``."""
    # pyjwt takes "" as "no key", which is what alg none needs.
    return jwt.encode(dict(claims), "", algorithm="none")


def requesting_ods(claims: Mapping[str, Any]) -> str | None:
    """The ODS code ``requesting_organization`` names, or None if it names none."""
    organization = claims.get("requesting_organization")
    if not isinstance(organization, Mapping):
        return None
    for identifier in _list(organization.get("identifier")):
        if isinstance(identifier, Mapping) and identifier.get("system") == ODS_SYSTEM:
            value = identifier.get("value")
            return value if isinstance(value, str) else None
    return None


def check_token(
    authorization: str | None, interaction: GpcInteraction, policy: JwtPolicy, now: float
) -> dict[str, Any]:
    """The token's claims if it passes every rule for ``interaction``; JwtRefused if not."""
    claims = decode_unsigned(bearer_token(authorization))
    missing = [name for name in REQUIRED_CLAIMS if claims.get(name) is None]
    if missing:
        raise _bad(f"the JWT lacks claim(s): {', '.join(missing)}")
    for name in _STRING_CLAIMS:
        if not isinstance(claims[name], str) or not claims[name].strip():
            raise _bad(f"the JWT claim {name} must be a non-empty string")
    for name in ("exp", "iat"):
        value = claims[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(f"the JWT claim {name} must be whole UNIX seconds, got {value!r}")
    _check_times(claims["iat"], claims["exp"], policy, now)
    if claims["reason_for_request"] not in REASONS:
        raise _bad(
            f"reason_for_request must be 'directcare' (or 'migration'), "
            f"got {claims['reason_for_request']!r}"
        )
    _check_scope(claims["requested_scope"], interaction)
    for name, resource_type in _RESOURCE_CLAIMS:
        _check_resource(name, claims[name], resource_type)
    if claims["requesting_practitioner"].get("id") != claims["sub"]:
        raise _bad("sub must equal requesting_practitioner.id")
    return claims


def _check_times(iat: int, exp: int, policy: JwtPolicy, now: float) -> None:
    if policy.timing == "strict":
        if exp - iat != LIFETIME_S:
            raise _bad(f"exp must be iat + {LIFETIME_S}, got exp - iat = {exp - iat}")
        if iat > now + policy.leeway_s:
            raise _bad(f"iat {iat} is more than {policy.leeway_s:g}s in the future")
        if exp < now:
            raise _bad(f"the JWT expired {int(now - exp)}s ago (exp {exp})")
        return
    if not 0 < exp - iat <= LIFETIME_S:
        raise _bad(f"exp must follow iat by at most {LIFETIME_S}s, got exp - iat = {exp - iat}")
    if exp < now - policy.leeway_s:
        raise _bad(f"the JWT expired {int(now - exp)}s ago (exp {exp})")


def _check_scope(requested: str, interaction: GpcInteraction) -> None:
    scopes = requested.split()
    match = _SCOPE.fullmatch(scopes[0]) if scopes else None
    if match is None:
        raise _bad(
            "requested_scope must start with patient/*.read, patient/*.write, "
            f"organization/*.read or organization/*.write, got {requested!r}"
        )
    others = [s for s in scopes[1:] if s not in CONFIDENTIALITY_SCOPES]
    if others:
        raise _bad(f"requested_scope holds unknown scope(s): {' '.join(others)}")
    subject, access = match.groups()
    needed = "write" if interaction.write else "read"
    if access != needed:
        raise _bad(f"requested_scope {scopes[0]} does not allow this {needed} request")
    if interaction.scope is not None and subject != interaction.scope:
        raise _bad(
            f"requested_scope {scopes[0]} does not cover {interaction.path}: "
            f"it needs {interaction.scope}/*.{needed}"
        )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _identifiers(resource: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in _list(resource.get("identifier")):
        if isinstance(item, Mapping):
            system, value = item.get("system"), item.get("value")
            if isinstance(system, str) and isinstance(value, str) and value:
                found.setdefault(system, value)
    return found


def _check_resource(name: str, resource: Any, resource_type: str) -> None:
    if not isinstance(resource, Mapping):
        raise _bad(f"the JWT claim {name} must be a FHIR {resource_type} resource (an object)")
    if resource.get("resourceType") != resource_type:
        raise _invalid(
            f"{name} must be a {resource_type}, got resourceType {resource.get('resourceType')!r}"
        )
    identifiers = _identifiers(resource)
    if resource_type == "Device":
        if not identifiers:
            raise _invalid(f"{name} needs an identifier with a system and a value")
        for field in ("model", "version"):
            if not isinstance(resource.get(field), str) or not resource[field]:
                raise _invalid(f"{name}.{field} must be a non-empty string")
    elif resource_type == "Organization":
        if ODS_SYSTEM not in identifiers:
            raise _invalid(f"{name} needs an identifier of system {ODS_SYSTEM}")
        if not isinstance(resource.get("name"), str) or not resource["name"]:
            raise _invalid(f"{name}.name must be a non-empty string")
    else:
        if SDS_USER_SYSTEM not in identifiers:
            raise _invalid(f"{name} needs an identifier of system {SDS_USER_SYSTEM} (UNK allowed)")
        names = _list(resource.get("name"))
        if not names or not all(
            isinstance(n, Mapping) and isinstance(n.get("family"), str) and n["family"]
            for n in names
        ):
            raise _invalid(f"{name}.name must be a list of names, each with a family name")
