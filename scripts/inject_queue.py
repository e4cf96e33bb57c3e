"""Put messages straight onto the simulator's queues, past the HTTP front doors.

    scripts/inject-queue outbound --from A80001 --to A80002 [--count 10] [--payload FILE]
    scripts/inject-queue inbound --from B80001 --to A80002 [--payload FILE]

``outbound`` publishes what the outbound MHS would have queued after accepting a request
(identities stamped from the topology) to ``<prefix>outbound``: the delivery workers take it
from there, so this tests the workers, the Spine proxy and the inbound MHS without the
outbound API. ``inbound`` publishes what the inbound MHS would have delivered to a hosted
instance's queue ``<prefix>inbound.<ASID>`` (the NHS adaptor's JSON), to test the system that
consumes it. The broker, queue prefix and topology come from MHS_* like every role's;
publishes are confirmed. Prints one JSON line per message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from mhs.broker import OutgoingMessage
from mhs.broker.factory import create_broker
from mhs.directory import Directory, Party, load_topology
from mhs.ebxml import MessageHeader, build_request, parse_message, timestamp_now
from mhs.ids import is_asid, new_id
from mhs.messages.instance import instance_message
from mhs.messages.outbound import outbound_message
from mhs.messages.queues import declare_known
from mhs.messages.records import OutboundRecord
from mhs.settings import Settings
from mhs.simulate.plan import Planned


def party(directory: Directory, key: str) -> Party:
    found = directory.by_asid(key) if is_asid(key) else None
    if found is None:
        found = next(iter(sorted(directory.by_ods(key), key=lambda p: not p.hosted)), None)
    if found is None:
        raise SystemExit(f"inject-queue: {key!r} is not an ASID or ODS code in the topology")
    return found


def inbound_message(
    directory: Directory,
    sender: Party,
    recipient: Party,
    *,
    interaction: str,
    payload: str,
    message_id: str,
) -> OutgoingMessage:
    known = directory.interaction(interaction)
    header = MessageHeader(
        from_party_id=sender.party_key,
        to_party_id=recipient.party_key,
        cpa_id=recipient.cpa_id,
        conversation_id=message_id,
        service=known.service if known else "urn:nhs:names:services:gp2gp",
        action=interaction,
        message_id=message_id,
        timestamp=timestamp_now(),
    )
    body, content_type = build_request(header, payload)
    ebxml = parse_message(content_type, body).ebxml
    return instance_message(
        ebxml=ebxml,
        payload=payload,
        message_id=message_id,
        correlation_id=message_id,
        interaction_id=interaction,
        from_asid=sender.asid,
        to_asid=recipient.asid,
        from_party_key=sender.party_key,
        to_party_key=recipient.party_key,
        ods_code=recipient.ods_code,
    )


async def inject(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.broker_url is None:
        raise SystemExit("inject-queue: set MHS_BROKER_URL (the embedded broker lives in-process)")
    directory = load_topology(settings.topology, settings.local_addresses)
    sender, recipient = party(directory, args.sender), party(directory, args.recipient)
    if args.target == "outbound" and not sender.hosted:
        raise SystemExit(f"inject-queue: {sender.asid} is not hosted here: it cannot send")
    if args.target == "inbound" and not recipient.hosted:
        raise SystemExit(f"inject-queue: {recipient.asid} is not hosted here: no queue of ours")
    queue = (
        settings.outbound_queue
        if args.target == "outbound"
        else settings.inbound_queue(recipient.asid)
    )
    broker = create_broker(
        settings.broker_url,
        connection_name=f"{settings.connection_name}-inject-queue",
        queue_type=settings.queue_type,
        delivery_limit=settings.delivery_limit,
    )
    await broker.start()
    try:
        await declare_known(broker, settings, queue)
        for _ in range(args.count):
            message_id = new_id()
            payload = (
                args.payload.read_text()
                if args.payload
                else Planned(message_id, sender, recipient, args.interaction, "deliver").payload()
            )
            message = (
                outbound_message(
                    OutboundRecord.stamped(
                        sender,
                        recipient,
                        message_id=message_id,
                        interaction_id=args.interaction,
                        payload=payload,
                    ),
                    app_id="inject-queue",
                )
                if args.target == "outbound"
                else inbound_message(
                    directory,
                    sender,
                    recipient,
                    interaction=args.interaction,
                    payload=payload,
                    message_id=message_id,
                )
            )
            await broker.publish(queue, message)
            print(orjson.dumps({"queue": queue, "message_id": message_id}).decode(), flush=True)
    finally:
        await broker.stop()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["outbound", "inbound"])
    parser.add_argument("--from", dest="sender", required=True, help="ASID or ODS code")
    parser.add_argument("--to", dest="recipient", required=True, help="ASID or ODS code")
    parser.add_argument("--interaction", default="RCMR_IN010000UK05")
    parser.add_argument("--payload", type=Path, help="HL7 payload file (default: generated)")
    parser.add_argument("--count", type=int, default=1)
    sys.exit(asyncio.run(inject(parser.parse_args())))


if __name__ == "__main__":
    main()
