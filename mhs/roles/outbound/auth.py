"""Who is calling the outbound MHS: a hosted instance, by its bearer credential."""

from __future__ import annotations

from aiohttp import web

from mhs.directory import Directory, Party


class Refused(Exception):
    """A request we will not accept, with the status and text to answer."""

    def __init__(self, status: int, text: str, **headers: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers


def authenticate(request: web.Request, directory: Directory) -> Party:
    """The hosted instance whose credential is in ``Authorization: Bearer``, or Refused 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(
            401,
            "Authorization: Bearer <instance credential> required",
            **{"WWW-Authenticate": 'Bearer realm="mhs"'},
        )
    party = directory.by_credential(token.strip())
    if party is None or not party.hosted:
        raise Refused(
            401,
            "unknown credential",
            **{"WWW-Authenticate": 'Bearer realm="mhs", error="invalid_token"'},
        )
    return party
