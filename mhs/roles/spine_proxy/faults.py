"""Fault control on the Spine proxy simulator: the ``/_admin/faults`` API and applying faults.

The proxy's relay calls :func:`apply_faults` once its checks have passed; the faults decide
whether the request is delayed, answered with a fault, forwarded and its answer dropped, or
forwarded more than once. Removing or clearing rules takes effect at once, also for requests
a rule is holding at that moment: they go on as if it had never applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from mhs.ebxml import (
    ErrorDetail,
    MessageHeader,
    build_message_error,
    build_soap_fault,
    timestamp_now,
)
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.roles.common import LOG, SETTINGS, json_response
from mhs.spine.faults import DuplicateRule, FaultDecision, FaultPlan, FaultRule

Forward = Callable[[], Awaitable[web.Response]]


class FaultControl:
    """The active fault plan, and a signal for requests held by a rule that was removed."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Wake every held request so it can see whether its rule is still active."""
        self._changed.set()
        self._changed = asyncio.Event()

    def active(self, rules: Iterable[FaultRule]) -> bool:
        current = {rule.id for rule in self.plan.rules}
        return all(rule.id in current for rule in rules)

    async def hold(self, rules: Iterable[FaultRule], seconds: float) -> bool:
        """Wait ``seconds``; return False early if any of ``rules`` is removed meanwhile."""
        rules = tuple(rules)
        try:
            async with asyncio.timeout(seconds):
                while self.active(rules):
                    await self._changed.wait()
        except TimeoutError:
            return True
        return False


FAULTS = web.AppKey("faults", FaultControl)


def install_fault_control(app: web.Application) -> None:
    """Give the proxy its fault plan and admin routes (before the relay's catch-all route)."""
    app[FAULTS] = FaultControl()
    app.router.add_get("/_admin/faults", list_faults)
    app.router.add_post("/_admin/faults", add_fault)
    app.router.add_delete("/_admin/faults", clear_faults)
    app.router.add_delete("/_admin/faults/{rule_id}", remove_fault)


async def apply_faults(
    request: web.Request,
    header: MessageHeader,
    fields: dict[str, str | None],
    forward: Forward,
) -> web.Response:
    """Answer one checked request as the active faults say; ``forward`` sends it on."""
    app = request.app
    control = app[FAULTS]
    decision = control.plan.decide(
        header.message_id,
        fields.get("from_asid") or "",
        fields.get("to_asid") or "",
        fields.get("interaction_id") or "",
    )
    if decision.answer is None and not decision.delays:
        return await forward()
    log_decision(app, decision, fields)
    delay_rules = [d.rule for d in decision.delays]
    if decision.delays and not await control.hold(delay_rules, decision.delay_ms / 1000):
        return await forward()
    rule = decision.answer
    if rule is None:
        return await forward()
    if rule.kind == "timeout":
        return await _timeout(app, rule, forward)
    if rule.kind == "drop-ack":
        return await _drop_ack(app, rule, forward)
    if rule.kind == "duplicate":
        first = await forward()
        for _ in range(rule.copies - 1):
            await forward()
        return first
    return _fault_answer(rule, header)


def log_decision(app: web.Application, decision: FaultDecision, fields: dict[str, Any]) -> None:
    """One proxy.fault_injected per fault that applies (each delay, then the answer)."""
    log = app[LOG]
    rule = decision.answer
    own_delay: dict[str, float] = {}
    for delay in decision.delays:
        if delay.rule is rule:
            own_delay["delay_ms"] = delay.ms
            continue
        log.info(
            Event.PROXY_FAULT_INJECTED,
            fault_id=delay.rule.id,
            kind=delay.rule.kind,
            delay_ms=delay.ms,
            attempt=decision.attempt,
            outcome="fault",
            **fields,
        )
    if rule is not None:
        detail: dict[str, Any] = {}
        if rule.kind in ("http-status", "drop-ack"):
            detail["status"] = rule.status
        elif rule.kind == "soap-fault":
            detail.update(status=500, code=rule.soap_code)
        elif rule.kind == "message-error":
            detail.update(status=200, code=rule.error_description)
        log.info(
            Event.PROXY_FAULT_INJECTED,
            fault_id=rule.id,
            kind=rule.kind,
            attempt=decision.attempt,
            outcome="fault",
            **own_delay,
            **detail,
            **fields,
        )


def hold_seconds(app: web.Application, rule: FaultRule) -> float:
    """How long a timeout (or drop-ack then timeout) rule holds what it applies to."""
    # Long enough that the delivery worker gives up first, unless the rule says otherwise.
    if rule.hold_ms is not None:
        return rule.hold_ms / 1000
    return app[SETTINGS].delivery_timeout_s * 2


async def _timeout(app: web.Application, rule: FaultRule, forward: Forward) -> web.Response:
    if not await app[FAULTS].hold([rule], hold_seconds(app, rule)):
        return await forward()
    return web.Response(status=504, text="Injected fault: timed out")


async def _drop_ack(app: web.Application, rule: FaultRule, forward: Forward) -> web.Response:
    answer = await forward()
    if rule.then == "timeout":
        if not await app[FAULTS].hold([rule], hold_seconds(app, rule)):
            return answer
        return web.Response(status=504, text="Injected fault: acknowledgement dropped, timed out")
    if not app[FAULTS].active([rule]):
        return answer
    return web.Response(
        status=rule.status, text=f"Injected fault: acknowledgement dropped (HTTP {rule.status})"
    )


def _fault_answer(rule: FaultRule, header: MessageHeader) -> web.Response:
    if rule.kind == "soap-fault":
        detail = ErrorDetail(
            "soap",
            rule.soap_code,
            "Error",
            f"Injected SOAP fault {rule.soap_code}",
            location="Not Supported",
        )
        return web.Response(status=500, body=build_soap_fault([detail]), content_type="text/xml")
    if rule.kind == "message-error":
        error = ErrorDetail("ebxml", "ValueNotRecognized", "Error", rule.error_description)
        body = build_message_error(header, [error], message_id=new_id(), timestamp=timestamp_now())
        return web.Response(status=200, body=body, content_type="text/xml")
    return web.Response(status=rule.status, text=f"Injected fault: HTTP {rule.status}")


async def list_faults(request: web.Request) -> web.Response:
    return json_response([rule.public() for rule in request.app[FAULTS].plan.rules])


async def add_fault(request: web.Request) -> web.Response:
    control = request.app[FAULTS]
    try:
        rule = FaultRule.model_validate_json(await request.read())
        control.plan.add(rule)
    except ValidationError as error:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
            for e in error.errors(include_url=False, include_context=False)
        ]
        return json_response({"error": "invalid fault rule", "problems": problems}, status=400)
    except DuplicateRule as error:
        return json_response({"error": str(error)}, status=409)
    request.app[LOG].info(
        Event.PROXY_FAULTS_CHANGED,
        change="added",
        fault=rule.public(),
        active=len(control.plan.rules),
    )
    return json_response(rule.public(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    control = request.app[FAULTS]
    removed = control.plan.clear()
    control.changed()
    request.app[LOG].info(Event.PROXY_FAULTS_CHANGED, change="cleared", removed=removed, active=0)
    return web.Response(status=204)


async def remove_fault(request: web.Request) -> web.Response:
    control = request.app[FAULTS]
    rule_id = request.match_info["rule_id"]
    if not control.plan.remove(rule_id):
        return json_response({"error": f"no active fault with id {rule_id}"}, status=404)
    control.changed()
    request.app[LOG].info(
        Event.PROXY_FAULTS_CHANGED,
        change="removed",
        fault_id=rule_id,
        removed=1,
        active=len(control.plan.rules),
    )
    return web.Response(status=204)
