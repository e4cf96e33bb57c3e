"""Message shapes on our queues and in the outbound API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from mhs.directory import Party
from mhs.messages.content_types import ATTACHMENT_CONTENT_TYPES

MAX_PAYLOAD_CHARS = 5_000_000
MAX_ATTACHMENTS = 98


def _known_content_type(value: str) -> str:
    if value not in ATTACHMENT_CONTENT_TYPES:
        raise ValueError("Must be one of the NHS MHS adaptor's attachment content types.")
    return value


class AttachmentIn(BaseModel):
    """An attachment as the NHS adaptor's outbound API takes it: its limits (a payload of
    up to 5,000,000 characters, any description of at least one) and its content types."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    is_base64: StrictBool
    content_type: Annotated[str, AfterValidator(_known_content_type)]
    payload: str = Field(min_length=1, max_length=MAX_PAYLOAD_CHARS)
    description: str = Field(min_length=1)
    # The manifest Reference's eb:id (the GP2GP adaptor names its documents so).
    document_id: str | None = None


class ExternalAttachmentIn(BaseModel):
    """A document sent in a message of its own, referenced from this one's manifest as
    ``mid:<message_id>`` (large GP2GP records); ``description`` is the manifest text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str = Field(min_length=1)
    description: str
    document_id: str | None = None


class OutboundRequest(BaseModel):
    """The JSON body of ``POST /`` on the outbound MHS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payload: str = Field(min_length=1, max_length=MAX_PAYLOAD_CHARS)
    attachments: tuple[AttachmentIn, ...] = Field(default=(), max_length=MAX_ATTACHMENTS)
    external_attachments: tuple[ExternalAttachmentIn, ...] = Field(
        default=(), max_length=MAX_ATTACHMENTS
    )


class OutboundRecord(BaseModel):
    """What the outbound MHS queues for the delivery workers: identities already stamped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str
    correlation_id: str
    interaction_id: str
    from_asid: str
    from_party_key: str
    from_ods: str
    to_asid: str
    to_party_key: str
    to_ods: str
    payload: str
    attachments: tuple[AttachmentIn, ...] = ()
    external_attachments: tuple[ExternalAttachmentIn, ...] = ()
    accepted_at: float
    # The caller's own ids, exactly as sent, where they differ from the wire ids above
    # (mhs.ids.wire_id): echoed wherever the caller sees its message.
    given_message_id: str | None = None
    given_correlation_id: str | None = None

    @classmethod
    def stamped(
        cls,
        sender: Party,
        recipient: Party,
        *,
        message_id: str,
        interaction_id: str,
        payload: str,
        correlation_id: str | None = None,
        attachments: Iterable[AttachmentIn] = (),
        external_attachments: Iterable[ExternalAttachmentIn] = (),
        accepted_at: float | None = None,
        given_message_id: str | None = None,
        given_correlation_id: str | None = None,
    ) -> OutboundRecord:
        """The record for a message from ``sender`` to ``recipient``, identities taken from
        the directory's parties (never from the request)."""
        # Every part is validated already (the parties by the topology loader, the rest by
        # OutboundRequest and the outbound MHS), so nothing is validated twice.
        return cls.model_construct(
            message_id=message_id,
            correlation_id=message_id if correlation_id is None else correlation_id,
            interaction_id=interaction_id,
            from_asid=sender.asid,
            from_party_key=sender.party_key,
            from_ods=sender.ods_code,
            to_asid=recipient.asid,
            to_party_key=recipient.party_key,
            to_ods=recipient.ods_code,
            payload=payload,
            attachments=tuple(attachments),
            external_attachments=tuple(external_attachments),
            accepted_at=time.time() if accepted_at is None else accepted_at,
            given_message_id=given_message_id,
            given_correlation_id=given_correlation_id,
        )

    @property
    def caller_ids(self) -> dict[str, str]:
        """``Message-Id`` and ``Correlation-Id`` as the caller sent them (or as we made them)."""
        return {
            "Message-Id": self.given_message_id or self.message_id,
            "Correlation-Id": self.given_correlation_id or self.correlation_id,
        }

    def log_fields(self) -> dict[str, str]:
        """The fields every log event about this message carries."""
        return {
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "interaction_id": self.interaction_id,
            "from_asid": self.from_asid,
            "to_asid": self.to_asid,
            "from_ods": self.from_ods,
            "to_ods": self.to_ods,
        }
