"""The ``kayip-alarm`` command: serve, api, relay, adapter, migrate, hash-key."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from services.logging_setup import configure_logging
from services.runtime import Parts, Runtime
from services.settings import DEV_API_KEY, Settings, get_settings, hash_api_key


def _banner(runtime: Runtime) -> str:
    base = runtime.base_url
    lines = [
        "kayip-alarm is running",
        f"  API docs:          {base}/docs",
        f"  health / metrics:  {base}/healthz  {base}/metrics",
        f"  Kafka bootstrap:   {runtime.bootstrap}"
        + (" (embedded broker)" if runtime.broker else ""),
        f"  database:          {runtime.settings.database_url}",
    ]
    if runtime.settings.simulator_enabled:
        lines.append(f"  operator simulator: {base}/simulator/operators")
    if runtime.settings.environment == "development":
        lines.append(f"  development API key: {DEV_API_KEY}")
    return "\n".join(lines)


async def _run(settings: Settings, parts: Parts, banner: bool) -> None:
    runtime = Runtime(settings, parts)
    await runtime.start()
    if banner:
        print(_banner(runtime), file=sys.stderr, flush=True)  # noqa: T201
    try:
        await runtime.wait()
    finally:
        await runtime.stop()


async def _migrate(settings: Settings) -> None:
    from services.db.engine import Database
    from services.db.migrate import upgrade_to_head

    db = Database(settings.database_url)
    try:
        await upgrade_to_head(db)
    finally:
        await db.dispose()


def run_event_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (it comes with uvicorn[standard]): a cheaper loop
    is latency on every hop of the hot path."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kayip-alarm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="everything in one process (embedded defaults)")
    sub.add_parser("api", help="the REST API only")
    sub.add_parser("relay", help="the outbox relay only")
    adapter = sub.add_parser("adapter", help="one operator's adapter worker")
    adapter.add_argument("--operator", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("new-api-key", help="print a new random API key and its SHA-256")
    args = parser.parse_args(argv)

    if args.command == "new-api-key":
        key = secrets.token_urlsafe(32)
        print(f"key:        {key}\nkey_sha256: {hash_api_key(key)}")  # noqa: T201
        return 0
    settings = get_settings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    parts = {
        "serve": Parts(),
        "api": Parts(api=True, relay=False, operators=[]),
        "relay": Parts(api=False, relay=True, operators=[]),
        "adapter": Parts(api=False, relay=False, operators=[getattr(args, "operator", "")]),
    }[args.command]
    if args.command in ("relay", "adapter") and settings.embedded_broker:
        parser.error(
            "separate processes need KAYIP_KAFKA_BOOTSTRAP_SERVERS; use serve for "
            "the embedded broker"
        )
    if args.command == "adapter" and args.operator not in settings.enabled_operators:
        parser.error(f"operator {args.operator!r} is not configured and enabled")
    try:
        run_event_loop(_run(settings, parts, banner=args.command == "serve"))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
