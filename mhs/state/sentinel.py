"""A Redis that fails over, found through Redis Sentinel: the URL that names it.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]`` names the
sentinels to ask (port 26379 if left out) and the monitored service whose current master
is the store; the password is the master's, and ``?sentinel_password=`` is the sentinels'
own if they require one. The client asks the sentinels for the master again whenever its
connection to the one it had fails, so a failover costs the calls that fail meanwhile
(refused as any outage is, and retried by whoever made them), and no restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = text, str(DEFAULT_SENTINEL_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not a sentinel host:port")
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The sentinels, service and credentials ``url`` names; ValueError saying what is
    wrong with it otherwise."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"a sentinel URL starts with {SCHEME}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise ValueError("a sentinel URL names at least one sentinel host:port")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(
            "a sentinel URL's path is /<service>[/<db>], the name the sentinels monitor "
            "(e.g. /mymaster/0)"
        )
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [])
    return SentinelUrl(
        sentinels=tuple(_address(host) for host in hosts.split(",")),
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=sentinel_password[0] if sentinel_password else None,
    )
