"""Per-instance RabbitMQ users: each hosted instance may read its own inbound queue and
nothing else (no configure, no write, no other queue).

The instance's password is its MHS credential, so an instance holds one secret; changing
it in the topology and applying again rotates both. Users are made through the RabbitMQ
management HTTP API when the management plugin answers, else with ``rabbitmqctl`` on this
host (the password goes on its standard input, never on a command line).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mhs.directory import Directory
from mhs.settings import Settings

Via = Literal["auto", "management", "rabbitmqctl"]
NOTHING = "^$"
MANAGEMENT_PORT = 15672


class BrokerUsersError(RuntimeError):
    """The broker would not take the change; the text says which user and why."""


@dataclass(frozen=True, slots=True)
class InstanceUser:
    """One instance's broker user and what it may do in ``vhost``."""

    username: str
    asid: str
    queue: str
    vhost: str
    password: str = field(repr=False)

    @property
    def read(self) -> str:
        return f"^{re.escape(self.queue)}$"

    configure = NOTHING
    write = NOTHING


def plan_users(
    directory: Directory, settings: Settings, asids: Sequence[str] = ()
) -> list[InstanceUser]:
    """A user per hosted instance with a credential (or only those of ``asids``), named
    ``<queue prefix>instance.<ASID>``."""
    vhost = "/"
    if settings.broker_url:
        path = urllib.parse.urlsplit(settings.broker_url).path
        vhost = urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"
    users = []
    for party in directory.parties:
        credential = directory.credential_for(party.asid)
        if party.hosted and credential is not None and (not asids or party.asid in asids):
            users.append(
                InstanceUser(
                    username=settings.queue(f"instance.{party.asid}"),
                    asid=party.asid,
                    queue=settings.inbound_queue(party.asid),
                    vhost=vhost,
                    password=credential,
                )
            )
    return users


class Applier(Protocol):
    """A way to create, update and delete broker users."""

    name: str

    def put(self, user: InstanceUser) -> None: ...
    def delete(self, user: InstanceUser) -> None: ...


class ManagementApi:
    """The RabbitMQ management HTTP API, as the administrator in the broker URL."""

    name = "management"

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: object | None = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": self._authorization, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def available(self) -> bool:
        try:
            return self._call("GET", "/api/overview") == 200
        except OSError:
            return False

    def _user_path(self, user: InstanceUser) -> str:
        return "/api/users/" + urllib.parse.quote(user.username, safe="")

    def put(self, user: InstanceUser) -> None:
        status = self._call("PUT", self._user_path(user), {"password": user.password, "tags": ""})
        if status not in (201, 204):
            raise BrokerUsersError(f"{user.username}: management API answered {status}")
        vhost = urllib.parse.quote(user.vhost, safe="")
        name = urllib.parse.quote(user.username, safe="")
        status = self._call(
            "PUT",
            f"/api/permissions/{vhost}/{name}",
            {"configure": user.configure, "write": user.write, "read": user.read},
        )
        if status not in (201, 204):
            raise BrokerUsersError(f"{user.username}: setting permissions answered {status}")

    def delete(self, user: InstanceUser) -> None:
        status = self._call("DELETE", self._user_path(user))
        if status not in (204, 404):
            raise BrokerUsersError(f"{user.username}: management API answered {status}")


class Rabbitmqctl:
    """``rabbitmqctl`` against the node on this host."""

    name = "rabbitmqctl"

    def __init__(self, executable: str = "rabbitmqctl", timeout_s: float = 60.0) -> None:
        self.executable = executable
        self.timeout_s = timeout_s
        # Each call starts an Erlang VM (about a second), so the user list is read once.
        self._users: set[str] | None = None

    def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
                [self.executable, "--quiet", *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BrokerUsersError(f"rabbitmqctl {args[0]}: {error}") from None
        if done.returncode != 0:
            raise BrokerUsersError(
                f"rabbitmqctl {args[0]} failed: {(done.stderr or done.stdout).strip()[:300]}"
            )
        return done.stdout

    def users(self) -> set[str]:
        if self._users is None:
            rows = json.loads(self._run(["list_users", "--formatter", "json"]) or "[]")
            self._users = {row["user"] for row in rows}
        return self._users

    def put(self, user: InstanceUser) -> None:
        users = self.users()
        command = "change_password" if user.username in users else "add_user"
        # Read from standard input: a password on the command line shows in `ps`.
        self._run([command, user.username], stdin=user.password + "\n")
        users.add(user.username)
        self._run(
            [
                "set_permissions",
                "--vhost",
                user.vhost,
                user.username,
                user.configure,
                user.write,
                user.read,
            ]
        )

    def delete(self, user: InstanceUser) -> None:
        users = self.users()
        if user.username in users:
            self._run(["delete_user", user.username])
            users.discard(user.username)


def choose_applier(settings: Settings, via: Via, management_url: str | None) -> Applier:
    """The management API if asked for or (``auto``) answering, else rabbitmqctl."""
    parts = urllib.parse.urlsplit(settings.broker_url or "amqp://guest:guest@127.0.0.1:5672/")
    username = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    url = management_url or f"http://{parts.hostname or '127.0.0.1'}:{MANAGEMENT_PORT}"
    api = ManagementApi(url, username, password)
    if via == "management" or (via == "auto" and api.available()):
        return api
    if shutil.which("rabbitmqctl") is None:
        raise BrokerUsersError(
            f"the management API does not answer at {url} and rabbitmqctl is not on PATH"
        )
    return Rabbitmqctl()
