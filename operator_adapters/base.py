"""The adapter contract every operator plugin implements.

An adapter turns our events into the payload one operator wants and delivers it.
It does not retry by itself: it says whether a failure is worth retrying (and
when), and the worker owns the retry schedule, the records and the metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import httpx
from pydantic import BaseModel

from schemas.events import AlertRetracted, DispatchRequested


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A payload ready to send: bytes plus their media type."""

    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the operator's endpoint answered when it accepted a delivery."""

    status_code: int


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
    def render_retraction(self, event: AlertRetracted) -> RenderedMessage:
        """Returns: the payload withdrawing an alert; it must reference the alert id."""

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
