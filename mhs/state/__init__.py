"""The state store: small records shared by every replica of a role (Redis, or in-process)."""

from mhs.state.base import Claim, ClaimState, Settlement, StateError, StateStore
from mhs.state.factory import create_state_store

__all__ = [
    "Claim",
    "ClaimState",
    "Settlement",
    "StateError",
    "StateStore",
    "create_state_store",
]
