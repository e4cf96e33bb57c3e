"""The Spine Security Proxy's rules and error bodies. No transport imports."""

from mhs.ssp.checks import (
    CHECK_ORDER,
    CheckContext,
    ClientCertificate,
    FhirCall,
    SspRequest,
    check_request,
)
from mhs.ssp.jwt_claims import JwtPolicy, JwtRefused
from mhs.ssp.outcome import Refusal, operation_outcome, provider_outcome

__all__ = [
    "CHECK_ORDER",
    "CheckContext",
    "ClientCertificate",
    "FhirCall",
    "JwtPolicy",
    "JwtRefused",
    "Refusal",
    "SspRequest",
    "check_request",
    "operation_outcome",
    "provider_outcome",
]
