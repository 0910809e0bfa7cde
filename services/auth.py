"""Bearer API keys: looked up by their SHA-256, never stored or logged in clear."""

from __future__ import annotations

from dataclasses import dataclass

from services.settings import ApiKeyConfig, hash_api_key


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    scopes: frozenset[str]


class ApiKeyAuthenticator:
    def __init__(self, keys: list[ApiKeyConfig]) -> None:
        self._by_hash = {k.key_sha256: Client(k.client_id, frozenset(k.scopes)) for k in keys}

    def authenticate(self, token: str) -> Client | None:
        return self._by_hash.get(hash_api_key(token))
