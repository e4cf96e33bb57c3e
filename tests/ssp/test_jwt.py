"""The GP Connect JWT rules: each broken token gets the documented 400 or 422, in our words."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhs.gpconnect.interactions import GPCONNECT_INTERACTIONS
from mhs.ssp.consumer_jwt import consumer_claims
from mhs.ssp.jwt_claims import (
    JwtPolicy,
    JwtRefused,
    check_token,
    decode_unsigned,
    encode_unsigned,
    requesting_ods,
)

NOW = 1_800_000_000
METADATA = GPCONNECT_INTERACTIONS["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]
SEARCH = GPCONNECT_INTERACTIONS["urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"]
STRICT = JwtPolicy("strict", 600)
LENIENT = JwtPolicy("lenient", 600)


def _part(value: Any) -> str:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    claims = consumer_claims(audience="https://p/A1/STU3/1/gpconnect", ods_code="A80001")
    claims.update(iat=NOW, exp=NOW + 300)
    for key, value in changes.items():
        if value is _DROP:
            claims.pop(key)
        else:
            claims[key] = value
    return claims


_DROP = object()


def _token(claims: dict[str, Any] | None = None, header: Any = None) -> str:
    head = header if header is not None else {"alg": "none", "typ": "JWT"}
    return f"{_part(head)}.{_part(claims if claims is not None else _claims())}."


def _check(authorization: str | None, policy: JwtPolicy = STRICT, now: float = NOW) -> None:
    check_token(authorization, SEARCH, policy, now)


def _nested(name: str, field: str, value: Any) -> dict[str, Any]:
    claims = _claims()
    claims[name] = {**claims[name], field: value}
    return claims


CASES: list[tuple[str, Callable[[], str | None], int, str]] = [
    ("no header", lambda: None, 400, "a Bearer JWT is required"),
    ("basic scheme", lambda: "Basic abc", 400, "must be 'Bearer <JWT>'"),
    ("bearer alone", lambda: "Bearer ", 400, "must be 'Bearer <JWT>'"),
    ("not base64", lambda: "Bearer !!!.???.", 400, "not base64url"),
    ("two parts", lambda: "Bearer " + _token()[:-1], 400, "three base64url parts"),
    ("four parts", lambda: "Bearer " + _token() + ".", 400, "joined by dots, found 4"),
    ("signed", lambda: "Bearer " + _token() + "c2ln", 400, "must be unsigned"),
    ("padded", lambda: "Bearer " + _token().replace(".", "==.", 1), 400, "padded with '='"),
    ("plus", lambda: "Bearer " + "+" + _token(), 400, "'+' and '/' are not allowed"),
    ("slash", lambda: "Bearer " + "/" + _token(), 400, "'+' and '/' are not allowed"),
    ("non-ascii", lambda: "Bearer é" + _token(), 400, "not base64url"),
    ("header not json", lambda: f"Bearer {_part(b'nope')}.{_part(_claims())}.", 400, "header"),
    (
        "claims not json",
        lambda: f"Bearer {_part({'alg': 'none', 'typ': 'JWT'})}.{_part(b'{')}.",
        400,
        "claims are not",
    ),
    ("claims a list", lambda: "Bearer " + _token([1]), 400, "not a JSON object"),  # type: ignore[arg-type]
    (
        "alg HS256",
        lambda: "Bearer " + _token(header={"alg": "HS256", "typ": "JWT"}),
        400,
        "alg must be 'none'",
    ),
    ("typ missing", lambda: "Bearer " + _token(header={"alg": "none"}), 400, "typ must be 'JWT'"),
    (
        "extra header key",
        lambda: "Bearer " + _token(header={"alg": "none", "typ": "JWT", "kid": "1"}),
        400,
        "only alg and typ, not kid",
    ),
    *[
        (
            f"no {claim}",
            (lambda c=claim: "Bearer " + _token(_claims(**{c: _DROP}))),
            400,
            f"lacks claim(s): {claim}",
        )
        for claim in (
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
    ],
    ("null iss", lambda: "Bearer " + _token(_claims(iss=None)), 400, "lacks claim(s): iss"),
    (
        "iss a number",
        lambda: "Bearer " + _token(_claims(iss=5)),
        400,
        "iss must be a non-empty string",
    ),
    (
        "exp a string",
        lambda: "Bearer " + _token(_claims(exp=str(NOW + 300))),
        400,
        "exp must be whole UNIX seconds",
    ),
    (
        "iat a bool",
        lambda: "Bearer " + _token(_claims(iat=True)),
        400,
        "iat must be whole UNIX seconds",
    ),
    (
        "exp 301 after iat",
        lambda: "Bearer " + _token(_claims(exp=NOW + 301)),
        400,
        "exp - iat = 301",
    ),
    (
        "exp 299 after iat",
        lambda: "Bearer " + _token(_claims(exp=NOW + 299)),
        400,
        "exp - iat = 299",
    ),
    ("exp before iat", lambda: "Bearer " + _token(_claims(exp=NOW - 1)), 400, "exp - iat = -1"),
    (
        "expired",
        lambda: "Bearer " + _token(_claims(iat=NOW - 600, exp=NOW - 300)),
        400,
        "expired 300s ago",
    ),
    (
        "iat far ahead",
        lambda: "Bearer " + _token(_claims(iat=NOW + 601, exp=NOW + 901)),
        400,
        "in the future",
    ),
    (
        "reason",
        lambda: "Bearer " + _token(_claims(reason_for_request="curiosity")),
        400,
        "reason_for_request must be",
    ),
    (
        "scope unknown",
        lambda: "Bearer " + _token(_claims(requested_scope="everything")),
        400,
        "requested_scope must start with",
    ),
    (
        "scope write",
        lambda: "Bearer " + _token(_claims(requested_scope="patient/*.write")),
        400,
        "does not allow this read request",
    ),
    (
        "scope subject",
        lambda: "Bearer " + _token(_claims(requested_scope="organization/*.read")),
        400,
        "it needs patient/*.read",
    ),
    (
        "scope extra",
        lambda: "Bearer " + _token(_claims(requested_scope="patient/*.read conf/X")),
        400,
        "unknown scope(s): conf/X",
    ),
    (
        "device not object",
        lambda: "Bearer " + _token(_claims(requesting_device="phone")),
        400,
        "must be a FHIR Device resource",
    ),
    (
        "device type",
        lambda: "Bearer " + _token(_nested("requesting_device", "resourceType", "Patient")),
        422,
        "requesting_device must be a Device",
    ),
    (
        "device identifier",
        lambda: "Bearer " + _token(_nested("requesting_device", "identifier", [])),
        422,
        "needs an identifier",
    ),
    (
        "device model",
        lambda: "Bearer " + _token(_nested("requesting_device", "model", "")),
        422,
        "model must be a non-empty",
    ),
    (
        "organization type",
        lambda: "Bearer " + _token(_nested("requesting_organization", "resourceType", "Device")),
        422,
        "must be a Organization",
    ),
    (
        "organization ods",
        lambda: (
            "Bearer "
            + _token(
                _nested("requesting_organization", "identifier", [{"system": "x", "value": "A"}])
            )
        ),
        422,
        "ods-organization-code",
    ),
    (
        "organization name",
        lambda: "Bearer " + _token(_nested("requesting_organization", "name", None)),
        422,
        "name must be a non-empty",
    ),
    (
        "practitioner type",
        lambda: "Bearer " + _token(_nested("requesting_practitioner", "resourceType", "Person")),
        422,
        "must be a Practitioner",
    ),
    (
        "practitioner user",
        lambda: "Bearer " + _token(_nested("requesting_practitioner", "identifier", [])),
        422,
        "sds-user-id",
    ),
    (
        "practitioner name",
        lambda: "Bearer " + _token(_nested("requesting_practitioner", "name", [{"given": ["A"]}])),
        422,
        "each with a family name",
    ),
    (
        "sub differs",
        lambda: "Bearer " + _token(_claims(sub="someone-else")),
        400,
        "sub must equal requesting_practitioner.id",
    ),
]


@pytest.mark.parametrize(
    ("make", "status", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_broken_tokens_are_refused(make: Callable[[], str | None], status: int, says: str) -> None:
    with pytest.raises(JwtRefused) as caught:
        _check(make())
    refusal = caught.value.refusal
    assert refusal.status == status
    assert refusal.token == ("INVALID_RESOURCE" if status == 422 else "BAD_REQUEST")
    assert says in refusal.detail
    assert refusal.detail.startswith("Authorization: ")


def test_a_good_token_passes_and_its_claims_come_back() -> None:
    claims = check_token("Bearer " + _token(), SEARCH, STRICT, NOW)
    assert claims == _claims()
    assert requesting_ods(claims) == "A80001"
    # Scheme case does not matter; metadata takes any read scope.
    check_token(
        "bearer " + _token(_claims(requested_scope="organization/*.read")), METADATA, STRICT, NOW
    )


@pytest.mark.parametrize(
    ("iat", "exp", "strict_ok", "lenient_ok"),
    [
        (NOW, NOW + 300, True, True),
        (NOW + 200, NOW + 500, True, True),  # iat ahead within the leeway
        (NOW + 5000, NOW + 5300, False, True),  # lenient does not look at iat
        (NOW, NOW + 120, False, True),  # lenient takes a shorter life
        (NOW, NOW + 301, False, False),
        (NOW - 700, NOW - 400, False, True),  # expired 400 s ago: within lenient leeway
        (NOW - 1000, NOW - 700, False, False),
    ],
)
def test_strict_and_lenient_timing(iat: int, exp: int, strict_ok: bool, lenient_ok: bool) -> None:
    token = "Bearer " + _token(_claims(iat=iat, exp=exp))
    for policy, ok in ((STRICT, strict_ok), (LENIENT, lenient_ok)):
        if ok:
            check_token(token, SEARCH, policy, NOW)
        else:
            with pytest.raises(JwtRefused):
                check_token(token, SEARCH, policy, NOW)


def test_encode_writes_an_unsigned_token_with_a_trailing_dot() -> None:
    token = encode_unsigned({"a": 1})
    assert token.endswith(".")
    assert token.count(".") == 2
    assert decode_unsigned(token) == {"a": 1}


def test_requesting_ods_reads_only_the_ods_identifier() -> None:
    assert requesting_ods({}) is None
    assert requesting_ods({"requesting_organization": "A80001"}) is None
    organization = {"identifier": [{"system": "other", "value": "X"}]}
    assert requesting_ods({"requesting_organization": organization}) is None


def _status(authorization: str) -> int:
    try:
        check_token(authorization, SEARCH, STRICT, NOW)
    except JwtRefused as refused:
        return refused.refusal.status
    return 200


@given(st.text(max_size=300))
def test_any_text_is_refused_or_read_never_a_crash(text: str) -> None:
    assert _status(text) in (400, 422)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
        max_size=12,
    )
)
def test_any_claims_are_refused_or_read_never_a_crash(claims: dict[str, Any]) -> None:
    assert _status("Bearer " + _token(claims)) in (400, 422)
