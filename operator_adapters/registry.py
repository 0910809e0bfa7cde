"""Adapter discovery through the ``kayip_alarm.operator_adapters`` entry-point group.

A separate distribution adds an operator by declaring an entry point; a plugin
that fails to load is logged and skipped, never fatal for the others.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import httpx
from pydantic import ValidationError

from operator_adapters.base import OperatorAdapter
from services.settings import OperatorConfig

ENTRY_POINT_GROUP = "kayip_alarm.operator_adapters"
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
    adapter_cls = available.get(config.adapter)
    if adapter_cls is None:
        raise AdapterConfigError(
            f"operator {operator}: no adapter named {config.adapter!r} "
            f"(available: {', '.join(sorted(available)) or 'none'})"
        )
    raw = {
        "endpoint_url": config.endpoint_url,
        "signing_secrets": [config.signing_secret.get_secret_value()]
        if config.signing_secret
        else [],
        "timeout_s": config.timeout_s,
    }
    try:
        adapter_config = adapter_cls.config_model.model_validate(raw)
    except ValidationError as exc:
        raise AdapterConfigError(f"operator {operator}: {exc}") from exc
    return adapter_cls(operator, adapter_config, http)
