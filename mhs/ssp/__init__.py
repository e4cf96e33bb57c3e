"""The Spine Security Proxy's rules and error bodies. No transport imports."""

from mhs.ssp.checks import SspRequest, check_request
from mhs.ssp.outcome import Refusal, operation_outcome

__all__ = ["Refusal", "SspRequest", "check_request", "operation_outcome"]
