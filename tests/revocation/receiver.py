"""A real webhook receiver on a loopback port, as a token broker would run one: it checks
the signature and the replay window, and applies each ``Idempotency-Key`` once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from revocation.signing import SignatureError, verify_signature
from tests.loopback import LoopbackServer


@dataclass
class Receiver:
    secret: bytes
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    #: when set, the first request is held (after it was recorded) until ``release`` is set
    hold_first: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        try:
            verify_signature(
                self.secret, headers.get("Tokenwarden-Signature"), body, now=time.time()
            )
        except SignatureError as exc:
            self.refused.append(str(exc))
            return 401
        key = headers.get("Idempotency-Key", "")
        doc = orjson.loads(body)
        with self.lock:
            self.requests.append({"key": key, "body": doc})
            first = len(self.requests) == 1
            self.effects.setdefault(key, doc)  # applied once, whatever the retries
        if first and self.hold_first:
            self.holding.set()
            self.release.wait(30)
        return self.status


@contextmanager
def receiving(secret: bytes, **kw: Any) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret, **kw)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.handle(self.headers, body)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender died while we held its request

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with LoopbackServer(Handler) as server:
        receiver.url = f"{server.base}/revocations"
        try:
            yield receiver
        finally:
            receiver.release.set()  # a held request must end before the server can stop
