"""The single error type the engine raises for bad targets.

The API layer maps it to HTTP 422 without inspecting geometry itself, so every
failure has to carry a stable machine-readable ``code``, a sentence a human can act
on, and the index of the offending target so a multi-target request can be fixed
without guesswork.
"""

from __future__ import annotations


class GeofenceError(ValueError):
    """A target was rejected; nothing downstream may be created from it."""

    code: str
    message: str
    target_index: int | None

    def __init__(self, code: str, message: str, target_index: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.target_index = target_index

    def with_index(self, target_index: int) -> GeofenceError:
        """Attach the target position once the caller knows it (validators do not)."""
        if self.target_index is not None:
            return self
        return GeofenceError(self.code, self.message, target_index)

    def __repr__(self) -> str:
        return (
            f"GeofenceError(code={self.code!r}, message={self.message!r}, "
            f"target_index={self.target_index!r})"
        )
