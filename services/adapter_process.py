"""``serve``'s adapter workers in a child process of their own: the second core.

In one process the API, the relay and every operator's worker share one event
loop on one core. Under a dispatch backlog the workers keep that loop busy, and a
resolve waits its turn twice: in the API, and again in the relay on its way to
Kafka (bench/retraction.py measured both). The child runs ``kayip-alarm adapter``
for every enabled operator against the same broker and database; this side starts
it, waits until its consumers have their partitions, restarts it if it dies (what
it had not finished is still uncommitted in Kafka, and owed in the database), and
tells it on its stdin, one alert id per line, which alerts a resolve here has just
retracted, so the child holds dispatches back from that moment (see
``operator_adapters/priority.py``), not only once its workers fetch the retraction.
A line starting with ``>`` says the relay here has just published, and up to which
offsets (``topic partition end`` triples): the child's idle consumers fetch at once
(``operator_adapters/fetch_gate.py``). The child exits when its stdin
closes: it never outlives this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from services.relay import PublishedEnds

log = logging.getLogger(__name__)

#: What the child prints on its stdout once every consumer has its partitions.
READY_LINE = b"kayip-alarm adapters ready\n"
CHILD_COMMAND = (sys.executable, "-m", "services.cli", "adapter", "--control-stdin")


class AdapterProcess:
    """Supervises the child; one per ``serve`` process."""

    def __init__(
        self,
        env: Mapping[str, str],
        restart_delay_s: float = 1.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._env = dict(env)
        self._restart_delay_s = restart_delay_s
        self._stop_timeout_s = stop_timeout_s
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._restart_now = False
        self._ready_watch: asyncio.Task[None] | None = None  # referenced, so never collected
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Start the child, and start it again whenever it exits unasked."""
        while not self._stopping:
            process = await self._spawn()
            code = await process.wait()
            self.ready.clear()
            _forget_metrics_of(process.pid)
            if self._stopping:
                return
            if self._restart_now:
                self._restart_now = False
                log.warning("adapter process restarted", extra={"pid": process.pid})
                continue
            log.error(
                "adapter process exited; starting it again",
                extra={"pid": process.pid, "exit_code": code},
            )
            await asyncio.sleep(self._restart_delay_s)

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *CHILD_COMMAND,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        self._ready_watch = asyncio.create_task(
            self._watch_ready(process), name="adapter-process-ready"
        )
        return process

    async def _watch_ready(self, process: asyncio.subprocess.Process) -> None:
        """The child's stdout carries one line, its readiness (its logs go to stderr)."""
        assert process.stdout is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            line = await process.stdout.readuntil(b"\n")
            if line == READY_LINE and self._process is process:
                self.ready.set()
            await process.stdout.read()  # keep draining until it exits

    def expect(self, alert_id: str) -> None:
        """A retraction was committed here: the child holds dispatches back for it.
        Best effort: a child that is not running has nothing in flight to hold."""
        self._tell(alert_id.encode() + b"\n")

    def published(self, ends: PublishedEnds) -> None:
        """The relay here has published: the child's idle consumers fetch now. Best
        effort too: a lost wake-up costs at most the child's recheck interval."""
        self._tell(encode_published(ends))

    def _tell(self, line: bytes) -> None:
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            process.stdin.write(line)

    async def restart(self) -> None:
        """A fresh child at once (the broker lost its state and forgot the consumer
        groups: nothing the old one holds is worth a graceful stop)."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._restart_now = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        await self._reap(process)

    async def stop(self) -> None:
        """Graceful: the end of its stdin makes the child stop its workers and leave
        its consumer groups; SIGTERM, then SIGKILL, only if it takes too long."""
        self._stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            await self._reap(process)

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout_s)
        except TimeoutError:
            log.error("adapter process did not stop; killing it", extra={"pid": process.pid})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``overrides`` on top: the child reads the same
    settings (``serve``'s come from the environment) except where it must differ."""
    return {**os.environ, **overrides}


def share_metrics_with_children() -> Path:
    """Prometheus multi-process mode, so ``/metrics`` here also shows the child's
    delivery metrics. Must run before ``prometheus_client`` is first imported (it
    picks its value store then); the caller removes the directory at exit."""
    directory = Path(tempfile.mkdtemp(prefix="kayip-alarm-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def remove_shared_metrics(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _forget_metrics_of(pid: int) -> None:
    """Prometheus multi-process mode keeps a dead process's live gauges until told."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def encode_published(ends: PublishedEnds) -> bytes:
    """``> topic partition end ...``: topic names hold no spaces (Kafka allows only
    letters, digits, ``.``, ``_`` and ``-``), alert ids never start with ``>``."""
    fields = [f"{topic} {partition} {end}" for (topic, partition), end in ends.items()]
    return " ".join([">", *fields]).encode() + b"\n"


def decode_published(line: str) -> PublishedEnds | None:
    """The ends a ``>`` line carries; None for any other line (or a garbled one)."""
    words = line.split()
    if not words or words[0] != ">" or len(words) % 3 != 1:
        return None
    try:
        return {(words[i], int(words[i + 1])): int(words[i + 2]) for i in range(1, len(words), 3)}
    except ValueError:
        return None


async def read_control(
    on_retraction: Callable[[str], None], on_published: Callable[[PublishedEnds], None]
) -> None:
    """The child's side of the stdin channel: ``on_published(ends)`` for a ``>`` line,
    ``on_retraction(alert_id)`` for any other; return when stdin ends (the parent has
    gone, or is stopping this process)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        text = line.strip().decode(errors="replace")
        if text.startswith(">"):
            ends = decode_published(text)
            if ends is not None:
                on_published(ends)
        elif text:
            on_retraction(text)
