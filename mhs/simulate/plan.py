"""The traffic a simulation sends, and what Spine's rules say should become of it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import orjson

from mhs.directory import Directory, Party
from mhs.ids import new_id

Expectation = Literal["deliver", "reject"]
GP2GP = ("RCMR_IN010000UK05", "RCMR_IN030000UK06", "COPC_IN000001UK01", "MCCI_IN010000UK13")

HL7_TEMPLATE = """<hl7:{interaction} xmlns:hl7="urn:hl7-org:v3">
  <hl7:id root="{message_id}"/>
  <hl7:interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>
  <hl7:communicationFunctionRcv typeCode="RCV">
    <hl7:device classCode="DEV" determinerCode="INSTANCE">
      <hl7:id root="1.2.826.0.1285.0.2.0.107" extension="{to_asid}"/>
    </hl7:device>
  </hl7:communicationFunctionRcv>
  <hl7:communicationFunctionSnd typeCode="SND">
    <hl7:device classCode="DEV" determinerCode="INSTANCE">
      <hl7:id root="1.2.826.0.1285.0.2.0.107" extension="{from_asid}"/>
    </hl7:device>
  </hl7:communicationFunctionSnd>
  <hl7:ControlActEvent classCode="CACT" moodCode="EVN"/>
</hl7:{interaction}>"""


@dataclass(frozen=True, slots=True)
class Planned:
    """One message to send: who to whom, and the outcome the directory predicts."""

    message_id: str
    sender: Party
    recipient: Party
    interaction_id: str
    expect: Expectation

    def payload(self) -> str:
        return HL7_TEMPLATE.format(
            interaction=self.interaction_id,
            message_id=self.message_id,
            to_asid=self.recipient.asid,
            from_asid=self.sender.asid,
        )

    def request(self, directory: Directory) -> tuple[dict[str, str], bytes]:
        """Headers and JSON body of the sender's ``POST /`` to the outbound MHS."""
        token = directory.credential_for(self.sender.asid)
        assert token is not None, "plan_traffic only sends from hosted instances"
        headers = {
            "Authorization": f"Bearer {token}",
            "Interaction-Id": self.interaction_id,
            "Message-Id": self.message_id,
            "Correlation-Id": self.message_id,
            "wait-for-response": "false",
            "ods-code": self.recipient.ods_code,
            "to-asid": self.recipient.asid,
            "Content-Type": "application/json",
        }
        return headers, orjson.dumps({"payload": self.payload()})


def expectation(
    directory: Directory, sender: Party, recipient: Party, interaction: str
) -> Expectation:
    if (
        sender.accredited_for(interaction)
        and recipient.accredited_for(interaction)
        and directory.has_agreement(sender.ods_code, recipient.ods_code)
    ):
        return "deliver"
    return "reject"


def plan_traffic(
    directory: Directory,
    count: int,
    *,
    refused_share: float = 0.1,
    remote_share: float = 0.15,
    seed: int = 1,
) -> list[Planned]:
    """``count`` messages between hosted instances and to remote ones.

    About ``refused_share`` go to pairs Spine refuses (no data sharing agreement, or a
    party not accredited); ``remote_share`` go to the second MHS's practices.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic plan, not a secret
    parties = list(directory.parties)
    hosted = [p for p in parties if p.hosted]
    remote = [p for p in parties if not p.hosted]
    interactions = [i for i in GP2GP if directory.interaction(i) is not None]
    if len(hosted) < 2 or not interactions:
        raise ValueError("the topology needs two hosted instances and the GP2GP interactions")
    planned: list[Planned] = []
    while len(planned) < count:
        sender = rng.choice(hosted)
        want: Expectation = "reject" if rng.random() < refused_share else "deliver"
        pool = remote if remote and rng.random() < remote_share else hosted
        interaction = rng.choice(interactions)
        candidates = [
            p
            for p in pool
            if p.asid != sender.asid and expectation(directory, sender, p, interaction) == want
        ]
        if not candidates:
            continue
        recipient = rng.choice(candidates)
        planned.append(Planned(new_id(), sender, recipient, interaction, want))
    return planned
