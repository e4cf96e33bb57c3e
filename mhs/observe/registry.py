"""Per-role objects shared in one process: the first user of a role creates one, the last
one takes it away, and log processors find it by the ``role`` each role's logger binds
(several apps of one role in a process, as ``serve all`` or tests run them, share it)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class RoleRegistry(Generic[T]):
    """Role name -> the shared object and how many users hold it."""

    def __init__(self) -> None:
        self._active: dict[str, T] = {}
        self._users: dict[str, int] = {}

    def get(self, role: object) -> T | None:
        """The role's object while anyone holds it (``role`` as an event carries it)."""
        return self._active.get(role) if isinstance(role, str) else None

    def join(self, role: str) -> T | None:
        """Hold the role's object if there is one already."""
        item = self._active.get(role)
        if item is not None:
            self._users[role] += 1
        return item

    def add(self, role: str, item: T) -> T:
        """Make ``item`` the role's object, held once."""
        self._active[role] = item
        self._users[role] = 1
        return item

    def leave(self, role: str) -> T | None:
        """Let go of the role's object; the last user gets it back, to close it."""
        left = self._users.get(role, 0) - 1
        if left > 0:
            self._users[role] = left
            return None
        self._users.pop(role, None)
        return self._active.pop(role, None)
