"""The adapter contract every operator plugin implements.

An adapter turns our events into the payload one operator wants and delivers it.
It does not retry by itself: it says whether a failure is worth retrying (and
when), and the worker owns the retry schedule, the records and the metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel

from schemas.events import AlertRetracted, AlertUpdated, DispatchRequested, LinkTestRequested
from schemas.receipts import ReceiptReport


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A payload ready to send: bytes plus their media type."""

    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the operator's endpoint answered when it accepted a delivery."""

    status_code: int


MessageType = Literal["alert.dispatch", "alert.update", "alert.retraction", "link.test"]


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What a rendered message is about, read back from its bytes.

    The operator simulator and the tests use it to recognise any adapter's
    format without knowing it; it carries ids only, never alert content.
    """

    type: MessageType
    alert_id: str | None
    alert_version: int | None


class DeliveryError(Exception):
    """A delivery failed; ``retriable`` says whether trying again can help."""

    retriable: ClassVar[bool] = False

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class RetriableDeliveryError(DeliveryError):
    """Timeouts, connection errors, 408/429/5xx. ``retry_after_s`` honours Retry-After."""

    retriable = True

    def __init__(
        self, reason: str, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(reason, status_code)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """The operator refused the payload (4xx other than 408/429): retrying cannot help."""


class OperatorAdapter(ABC):
    """Base class for operator plugins.

    Subclasses set ``config_model`` (a pydantic model with ``extra="forbid"``) and
    are registered under the ``kayip_alarm.operator_adapters`` entry-point group.
    """

    config_model: ClassVar[type[BaseModel]]

    def __init__(self, operator: str, config: BaseModel, http: httpx.AsyncClient) -> None:
        """Args:
        operator: the configured operator name (e.g. ``turkcell``).
        config: an instance of ``config_model``, already validated.
        http: the process-wide client; adapters never create their own.
        """
        self.operator = operator
        self.config = config
        self.http = http

    @abstractmethod
    def render_dispatch(self, event: DispatchRequested) -> RenderedMessage:
        """Returns: the payload announcing a new alert to this operator."""

    @abstractmethod
    def render_update(self, event: AlertUpdated) -> RenderedMessage:
        """Returns: the payload replacing ``event.previous_version`` of the alert
        (CAP Update semantics); an operator without the alert treats it as new."""

    @abstractmethod
    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        """Returns: the payload withdrawing an alert; it must reference the alert id."""

    @abstractmethod
    def render_link_test(self, event: LinkTestRequested) -> RenderedMessage:
        """Returns: a test message the operator acknowledges and never broadcasts."""

    def parse_receipt(self, body: bytes, content_type: str) -> ReceiptReport:
        """Read a receipt this operator posted (authentication is already checked).

        The default reads our JSON :class:`ReceiptReport`; an operator with its own
        format overrides this. Raises ``ValueError`` (or pydantic's
        ``ValidationError``) for a body that is not a receipt.
        """
        del content_type
        return ReceiptReport.model_validate_json(body)

    @classmethod
    def describe(cls, body: bytes, content_type: str) -> MessageSummary | None:
        """Read back what a message this adapter rendered is about.

        Returns None for a body that is not in this adapter's format; plugins that
        do not implement it are simply not recognised by the simulator.
        """
        del body, content_type
        return None

    @abstractmethod
    async def deliver(self, webhook_id: str, message: RenderedMessage) -> DeliveryReceipt:
        """Send one message.

        Args:
            webhook_id: stable across retries, so the operator can deduplicate.
            message: what ``render_*`` produced.
        Returns:
            the operator's acceptance.
        Raises:
            RetriableDeliveryError: worth trying again (optionally after a delay).
            PermanentDeliveryError: the operator refused the message.
        """
