"""The ``kayip-alarm`` command: serve, api, relay, adapter, migrate, hash-key."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import secrets
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from services.adapter_process import READY_LINE, remove_shared_metrics, share_metrics_with_children
from services.gc_policy import settle_after_startup
from services.logging_setup import configure_logging
from services.settings import DEV_API_KEY, Settings, get_settings, hash_api_key

if TYPE_CHECKING:  # imported late: prometheus_client must not load before metrics are shared
    from services.runtime import Parts, Runtime


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


class _SignalsAfterUvicorn:
    """uvicorn shuts down on SIGINT or SIGTERM, then raises that signal again under the
    handler it found. With Python's defaults that kills the process (SIGTERM) or breaks
    out of the loop (SIGINT) before ``Runtime.stop`` has stopped the adapter process and
    the broker and removed the shared metrics. Under these handlers the repeat does
    nothing once the service is up, so it stops in order; before that, either signal
    stops start-up at once."""

    def __init__(self) -> None:
        self.serving = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, _sig: int, _frame: object) -> None:
        if not self.serving:
            raise KeyboardInterrupt


async def _run(
    settings: Settings, parts: Parts, banner: bool, signals: _SignalsAfterUvicorn | None = None
) -> None:
    from services.runtime import Runtime

    runtime = Runtime(settings, parts)
    await runtime.start()
    if signals is not None:
        signals.serving = True
    settle_after_startup()
    if parts.control_stdin:
        sys.stdout.buffer.write(READY_LINE)
        sys.stdout.flush()
    if banner:
        print(_banner(runtime), file=sys.stderr, flush=True)  # noqa: T201
    try:
        await _until_stopped(runtime, orderly_on_signals=not parts.api and not parts.control_stdin)
    finally:
        await runtime.stop()


async def _until_stopped(runtime: Runtime, orderly_on_signals: bool) -> None:
    """Until a part stops, or, for a standalone relay or adapter process, SIGTERM or
    SIGINT: those then stop it in order (an orchestrator's stop is SIGTERM), so webhooks
    on the wire are answered and recorded instead of sent again after the restart. The
    API's processes get this from uvicorn (see ``_SignalsAfterUvicorn``); serve's child
    stops in order when its stdin ends, and SIGTERM (a restart) still ends it at once."""
    requested = asyncio.Event()
    if orderly_on_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, requested.set)
    parts = [asyncio.create_task(runtime.wait()), asyncio.create_task(requested.wait())]
    try:
        await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in parts:
            task.cancel()


async def _migrate(settings: Settings) -> None:
    from services.db.engine import Database
    from services.db.migrate import upgrade_to_head

    db = Database(settings.database_url)
    try:
        await upgrade_to_head(db)
    finally:
        await db.dispose()


async def _redrive(settings: Settings, operator: str | None, alert_id: str | None) -> None:
    """Works against the database alone: a running relay (any process) publishes the
    re-driven events within its sweep interval."""
    from datetime import UTC, datetime

    from services.db.engine import Database
    from services.redrive import redrive_dead_letters

    db = Database(settings.database_url)
    try:
        result = await redrive_dead_letters(
            db, datetime.now(UTC), operator=operator, alert_id=alert_id, actor="cli"
        )
    finally:
        await db.dispose()
    print(  # noqa: T201
        f"re-driven: {result.deliveries} deliveries ({result.events} events re-published)"
    )


def remember_missing_sniffio() -> None:
    """Make a missing ``sniffio`` a cached miss instead of a fresh search per request.

    httpcore (under httpx, which the adapters use for every webhook) runs
    ``import sniffio`` several times per request; without the package, each of those
    imports searches every ``sys.path`` entry again and fails. Measured: 1.6 ms of CPU
    per webhook POST with the search, 1.0 ms without. A ``None`` entry in
    ``sys.modules`` makes the import fail at once, which is all httpcore needs to fall
    back to asyncio. When sniffio is installed this does nothing.
    """
    if importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


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
    adapter = sub.add_parser("adapter", help="adapter workers (every enabled operator's)")
    adapter.add_argument("--operator", action="append", help="only this operator's (repeatable)")
    # serve's child: retractions to expect on stdin, readiness on stdout.
    adapter.add_argument("--control-stdin", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="apply database migrations")
    redrive = sub.add_parser(
        "redrive", help="re-drive dead-lettered deliveries (after fixing the cause)"
    )
    redrive.add_argument("--operator", help="only this operator's")
    redrive.add_argument("--alert", help="only this alert's")
    sub.add_parser("new-api-key", help="print a new random API key and its SHA-256")
    args = parser.parse_args(argv)

    if args.command == "new-api-key":
        key = secrets.token_urlsafe(32)
        print(f"key:        {key}\nkey_sha256: {hash_api_key(key)}")  # noqa: T201
        return 0
    settings = get_settings()
    configure_logging(settings.log_level)
    remember_missing_sniffio()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    if args.command == "redrive":
        asyncio.run(_redrive(settings, args.operator, args.alert))
        return 0
    if args.command in ("relay", "adapter") and settings.embedded_broker:
        parser.error(
            "separate processes need KAYIP_KAFKA_BOOTSTRAP_SERVERS; use serve for "
            "the embedded broker"
        )
    operators: list[str] | None = getattr(args, "operator", None)
    for name in operators or []:
        if name not in settings.enabled_operators:
            parser.error(f"operator {name!r} is not configured and enabled")
    in_child = args.command == "serve" and settings.adapter_process
    control_stdin: bool = getattr(args, "control_stdin", False)
    shared_metrics = share_metrics_with_children() if in_child else None
    from services.runtime import Parts

    parts = {
        "serve": Parts(adapters_in_child=in_child),
        "api": Parts(api=True, relay=False, operators=[]),
        "relay": Parts(api=False, relay=True, operators=[]),
        "adapter": Parts(
            api=False,
            relay=False,
            operators=operators,
            migrate=not control_stdin,  # serve's child: serve has migrated already
            control_stdin=control_stdin,
        ),
    }[args.command]
    signals = _SignalsAfterUvicorn() if parts.api else None
    try:
        run_event_loop(_run(settings, parts, banner=args.command == "serve", signals=signals))
    except KeyboardInterrupt:
        pass
    finally:
        if shared_metrics is not None:
            remove_shared_metrics(shared_metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
