"""RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class InvalidParam(BaseModel):
    name: str
    reason: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
