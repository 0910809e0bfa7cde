"""CPU and wall time per webhook POST: the lean transport against httpx's own.

An adapter's webhook is one signed POST of a ~1.5 KB JSON body, answered by a small
JSON receipt. This bench sends such POSTs one after another through an
``httpx.AsyncClient`` on each wire (``KAYIP_WEBHOOK_TRANSPORT``: ``lean`` or
``httpcore``), against a uvicorn server in a separate process (so its CPU is not
counted), on uvloop as the service runs. Rounds alternate between the wires, so a
noisy machine hits both alike; the ratio is per round, then the median.

    python bench/http_transport.py [--posts 3000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operator_adapters.http_transport import webhook_client  # noqa: E402
from services.messaging.broker import free_port  # noqa: E402

SERVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})
"""
BODY = b'{"alert":' + b'"x"' * 500 + b"}"
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_0000000000000000000000",
    "webhook-timestamp": "1790000000",
    "webhook-signature": "v1," + "A" * 44,
}


async def posts(wire: str, url: str, count: int) -> tuple[float, float]:
    """CPU and wall milliseconds per POST, after a warm-up on the same connection."""
    async with webhook_client(wire, 5) as http:  # type: ignore[arg-type]
        for _ in range(100):
            await http.post(url, content=BODY, headers=HEADERS)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            response = await http.post(url, content=BODY, headers=HEADERS, timeout=5.0)
            if response.status_code != 200 or response.json() != {"status": "accepted"}:
                raise SystemExit(f"unexpected answer on {wire}: {response.status_code}")
        return (
            1000 * (time.process_time() - cpu) / count,
            1000 * (time.perf_counter() - wall) / count,
        )


def wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the receiving server did not start")
        try:
            httpx.post(url, content=b"{}")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the receiving server did not answer within 20 s")


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{model}, nproc={os.cpu_count()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks"
    workdir = Path(__file__).resolve().parent
    command = [
        sys.executable,
        "-c",
        SERVER + "\nimport uvicorn\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', "
        "access_log=False)",
    ]
    server = subprocess.Popen(command, cwd=workdir)
    try:
        wait_for(url, server)
        figures: dict[str, list[tuple[float, float]]] = {"lean": [], "httpcore": []}
        for _ in range(args.rounds):
            for wire in ("httpcore", "lean"):
                figures[wire].append(uvloop.run(posts(wire, url, args.posts)))
    finally:
        server.terminate()
        server.wait()
    print(f"machine: {machine()}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   load average: {load}")
    print(f"{args.rounds} rounds x {args.posts} sequential POSTs of {len(BODY)} bytes per wire")
    for wire, runs in figures.items():
        cpu = ", ".join(f"{c:.3f}" for c, _ in runs)
        wall = ", ".join(f"{w:.3f}" for _, w in runs)
        print(f"  {wire:8}  CPU ms/POST: {cpu}   wall ms/POST: {wall}")
    pairs = list(zip(figures["httpcore"], figures["lean"], strict=True))
    cpu_ratio = statistics.median(old[0] / new[0] for old, new in pairs)
    wall_ratio = statistics.median(old[1] / new[1] for old, new in pairs)
    print(f"httpcore / lean, median of rounds: CPU {cpu_ratio:.2f}x, wall {wall_ratio:.2f}x")


if __name__ == "__main__":
    main()
