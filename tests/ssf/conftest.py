"""Fixtures: a real JWKS server and a small SSF transmitter on 127.0.0.1, signing keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson
import pytest

from tests.loopback import LoopbackServer
from tests.ssf.helpers import Signer, ec_signer, ed_signer, rsa_signer
from tests.ssf.transmitter import FakeTransmitter


class JwksServer(LoopbackServer):
    """Serves ``/jwks.json`` from a real HTTP server; the test swaps what it serves."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.status = 200
        self.hits = 0
        self.send_length = True
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits += 1
                    body, status = server.body, server.status
                self.send_response(status)
                self.send_header("Content-Type", "application/jwk-set+json")
                if server.send_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.url = f"{self.base}/jwks.json"

    def serve(self, jwks: dict[str, Any] | bytes, status: int = 200) -> None:
        with self._lock:
            self.body = jwks if isinstance(jwks, bytes) else orjson.dumps(jwks)
            self.status = status


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture(scope="session")
def rsa_key() -> Signer:
    return rsa_signer("rsa-1")


@pytest.fixture(scope="session")
def ec_key() -> Signer:
    return ec_signer("ec-1")


@pytest.fixture(scope="session")
def ed_key() -> Signer:
    return ed_signer("ed-1")


@pytest.fixture
def transmitter(ec_key: Signer) -> Iterator[FakeTransmitter]:
    """A small SSF transmitter on 127.0.0.1 (discovery, stream management, RFC 8936 poll)."""
    with FakeTransmitter(ec_key) as server:
        yield server
