"""Domain errors. The API maps each to one HTTP status; nothing else leaks out."""

from __future__ import annotations


class DomainError(Exception):
    """Base: carries a human-readable detail that is safe to show the caller."""

    status_hint = 400

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class ValidationFailed(DomainError):
    """The request is well-formed but breaks a rule (consent, time, area)."""

    status_hint = 422


class NotFound(DomainError):
    status_hint = 404


class Conflict(DomainError):
    status_hint = 409
