"""Adapter discovery through the ``kayip_alarm.operator_adapters`` entry-point group.

A separate distribution adds an operator by declaring an entry point; a plugin
that fails to load is logged and skipped, never fatal for the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

import httpx
from pydantic import ValidationError

from operator_adapters.base import OperatorAdapter
from schemas.receipts import ReceiptReport
from services.settings import OperatorConfig

ENTRY_POINT_GROUP = "kayip_alarm.operator_adapters"
#: Stands in for an endpoint the receipts-reading process does not know (see receipt_parsers).
NO_ENDPOINT = "http://no-endpoint.invalid/"
log = logging.getLogger(__name__)


class AdapterConfigError(ValueError):
    """An operator's configuration does not fit its adapter."""


def discover() -> dict[str, type[OperatorAdapter]]:
    found: dict[str, type[OperatorAdapter]] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as exc:  # a broken plugin must not take the others down
            log.error(
                "adapter plugin failed to load",
                extra={"plugin": entry_point.name, "error": repr(exc)},
            )
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, OperatorAdapter)):
            log.error(
                "adapter plugin is not an OperatorAdapter", extra={"plugin": entry_point.name}
            )
            continue
        found[entry_point.name] = loaded
    return found


def build_adapter(
    operator: str,
    config: OperatorConfig,
    http: httpx.AsyncClient,
    available: dict[str, type[OperatorAdapter]],
) -> OperatorAdapter:
    name = adapter_name(operator, config, available)
    adapter_cls = available.get(name)
    if adapter_cls is None:
        raise AdapterConfigError(
            f"operator {operator}: no adapter named {name!r} "
            f"(available: {', '.join(sorted(available)) or 'none'})"
        )
    raw = {
        **config.options,
        "endpoint_url": config.endpoint_url,
        "signing_secrets": config.secrets(),
        "timeout_s": config.timeout_s,
    }
    try:
        adapter_config = adapter_cls.config_model.model_validate(raw)
    except ValidationError as exc:
        raise AdapterConfigError(f"operator {operator}: {exc}") from exc
    return adapter_cls(operator, adapter_config, http)


def adapter_name(
    operator: str, config: OperatorConfig, available: dict[str, type[OperatorAdapter]]
) -> str:
    """The configured plugin, else the one named after the operator, else the generic one."""
    if config.adapter is not None:
        return config.adapter
    return operator if operator in available else "standard_webhooks"


def receipt_parsers(
    operators: Mapping[str, OperatorConfig],
    available: dict[str, type[OperatorAdapter]] | None = None,
) -> dict[str, Callable[[bytes, str], ReceiptReport]]:
    """Each operator's ``parse_receipt``, for the API, which reads receipts but sends nothing.

    The adapter is built from the operator's own configuration, so a plugin can
    read receipts with its options. Only ``parse_receipt`` is ever called on it:
    where this process has no endpoint for the operator (in development the
    runtime points adapters at the simulator) a placeholder stands in, and its
    HTTP client never opens a connection. An operator whose adapter cannot be
    built is logged and left out (its receipts are read as our JSON form).
    """
    found = discover() if available is None else available
    http = httpx.AsyncClient()
    parsers: dict[str, Callable[[bytes, str], ReceiptReport]] = {}
    for name, config in operators.items():
        endpoint = config.endpoint_url or NO_ENDPOINT
        try:
            adapter = build_adapter(
                name, config.model_copy(update={"endpoint_url": endpoint}), http, found
            )
        except AdapterConfigError:
            # The message may quote configuration values (secrets): name the operator only.
            log.error(
                "receipt reader unavailable: invalid adapter configuration",
                extra={"operator": name},
            )
            continue
        parsers[name] = adapter.parse_receipt
    return parsers
