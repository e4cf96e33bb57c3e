"""Turning the corpus data files into HTTP requests.

Each data file names a ``target`` role and a ``preset`` (a request that role accepts, from
presets.yaml); each case changes the preset (headers set or removed, another method, path
or body, a broken JWT) and says what must come back. ``{{name}}`` placeholders in paths,
headers and bodies are filled at send time: ``uuid`` (one fresh id per request),
``credential`` / ``credential:<ASID>``, ``jwt`` (valid unless the case's ``jwt`` block
breaks it), ``root`` / ``root:<ODS>`` / ``structured_root`` (provider service roots where
the running provider really is; ``base`` and ``port`` of it), ``patient`` (an NHS number
registered at A80002).
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from mhs.gpconnect.interactions import service_root
from mhs.provider.records import patients_of
from mhs.ssp.consumer_jwt import consumer_claims

HERE = Path(__file__).parent
PRESETS: dict[str, Any] = yaml.safe_load((HERE / "presets.yaml").read_text())
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_:.-]+)\}\}")
_DROP = "<drop>"


@dataclass(frozen=True)
class Case:
    """One bad request and the answer it must get."""

    id: str
    target: str
    method: str
    path: str
    headers: dict[str, str | None]
    body: Any
    jwt: dict[str, Any] | None
    raw: Any
    status: int
    text: str
    source: str = field(default="")


@dataclass
class Context:
    """What placeholders are filled from: credentials and where the provider runs."""

    credential: Callable[[str], str]
    provider_base: str
    values: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self._value(m.group(1)), text)

    def _value(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        kind, _, argument = name.partition(":")
        if kind == "credential":
            return self.credential(argument or "918000000001")
        if kind == "root":
            return service_root(self.provider_base, argument or "A80002", "foundations")
        if kind == "structured_root":
            return service_root(self.provider_base, argument or "A80002", "structured")
        if kind == "patient":
            return patients_of(argument or "A80002")[0].nhs_number
        if kind == "base":
            return self.provider_base
        if kind == "port":
            return str(urlsplit(self.provider_base).port)
        raise KeyError(f"unknown corpus placeholder {{{{{name}}}}}")


def preset_case(name: str, target: str) -> Case:
    """The preset itself, as a case that must succeed."""
    preset = PRESETS["requests"][name]
    return Case(
        id=name,
        target=target,
        method=preset.get("method", "POST"),
        path=preset["path"],
        headers=dict(preset.get("headers", {})),
        body=preset.get("body"),
        jwt=None,
        raw=None,
        status=0,
        text="",
    )


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(HERE.glob("bad-*.yaml")):
        data = yaml.safe_load(path.read_text())
        preset = PRESETS["requests"][data["preset"]]
        for item in data["cases"]:
            headers: dict[str, str | None] = dict(preset.get("headers", {}))
            if item.get("headers") is not None:
                headers.update(item["headers"])
            for name in item.get("remove", []):
                headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            cases.append(
                Case(
                    id=item["id"],
                    target=data["target"],
                    method=item.get("method", preset.get("method", "POST")),
                    path=item.get("path", preset["path"]),
                    headers=headers,
                    body=item["body"] if "body" in item else preset.get("body"),
                    jwt=item.get("jwt"),
                    raw=item.get("raw"),
                    status=item["status"],
                    text=item["text"],
                    source=path.name,
                )
            )
    return cases


def text_of(spec: Any, context: Context) -> str:
    """A string spec: text with placeholders, or ``{repeat, times, before, after}``."""
    if isinstance(spec, str):
        return context.fill(spec)
    if isinstance(spec, Mapping) and "repeat" in spec:
        middle: str = spec["repeat"] * int(spec["times"])
        return context.fill(spec.get("before", "")) + middle + context.fill(spec.get("after", ""))
    raise TypeError(f"not a corpus string: {spec!r}")


def _json_value(value: Any, context: Context) -> Any:
    if isinstance(value, Mapping) and "repeat" in value:
        return text_of(value, context)
    if isinstance(value, Mapping):
        return {k: _json_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v, context) for v in value]
    if isinstance(value, str):
        return context.fill(value)
    return value


def ebxml_body(spec: Mapping[str, Any], context: Context) -> str:
    """The preset ebXML message with ``vars`` replaced, ``extra_parts`` attachments added."""
    template = PRESETS["ebxml"]
    values = {**template["defaults"], **(spec.get("vars") or {})}
    filled = {name: text_of(value, context) for name, value in values.items()}
    envelope = template["envelope"]
    for name, value in filled.items():
        envelope = envelope.replace("${" + name + "}", value)
    message: str = template["message"]
    extra = "".join(
        template["extra_part"].replace("${n}", str(n)).replace("${boundary}", filled["boundary"])
        for n in range(int(spec.get("extra_parts", 0)))
    )
    filled = {**filled, "envelope": envelope, "extra_parts": extra}
    for name, value in filled.items():
        message = message.replace("${" + name + "}", value)
    return message


def body_bytes(spec: Any, context: Context) -> bytes | None:
    """A case's body: text (placeholders filled), ``json``, ``base64``, ``repeat``, ``ebxml``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return context.fill(spec).encode()
    if "json" in spec:
        return orjson.dumps(_json_value(spec["json"], context))
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    if "ebxml" in spec:
        ebxml = spec["ebxml"] or {}
        # latin-1 turns a var's \xNN characters into those very bytes (invalid UTF-8).
        return ebxml_body(ebxml, context).encode(ebxml.get("encoding", "utf-8"))
    return text_of(spec, context).encode()


def jwt_token(spec: Mapping[str, Any] | None, context: Context) -> str:
    """The case's JWT: a valid one, or one broken as ``spec`` says."""
    spec = spec or {}
    if "raw" in spec:
        return str(spec["raw"])
    now = int(time.time())
    claims = consumer_claims(audience=context.fill("{{root}}"), ods_code=spec.get("ods", "A80001"))
    iat = now + int(spec.get("iat_offset", 0))
    claims.update(iat=iat, exp=iat + int(spec.get("lifetime", 300)))
    for name, value in (spec.get("set") or {}).items():
        target, _, inner = name.partition(".")
        if inner:
            claims[target] = {**claims[target], inner: value}
        elif value == _DROP:
            claims.pop(target, None)
        else:
            claims[target] = value
    header = spec.get("header", {"alg": "none", "typ": "JWT"})
    parts = [
        base64.urlsafe_b64encode(orjson.dumps(header)).rstrip(b"=").decode(),
        base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode(),
    ]
    signature: str = spec.get("signature", "")
    return ".".join(parts) + "." + signature


def prepare(case: Case, context: Context) -> tuple[str, dict[str, str], bytes | None]:
    """The path, headers and body to send for ``case``."""
    context.values = {"uuid": str(uuid.uuid4()).upper()}
    context.values["jwt"] = jwt_token(case.jwt, context)
    headers = {k: text_of(v, context) for k, v in case.headers.items() if v is not None}
    return context.fill(case.path), headers, body_bytes(case.body, context)
