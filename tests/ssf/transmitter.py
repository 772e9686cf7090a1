"""A small SSF 1.0 transmitter on 127.0.0.1 for the client tests: real HTTP, in-memory state.

Serves, on one port:

- discovery (SSF 1.0 §7.2) for several issuers: the root issuer ``{base}``, a path issuer
  ``{base}/tenant1`` (path-insertion form), ``{base}/sse`` (only the legacy
  ``sse-configuration``), ``{base}/legacy`` (only ``risc-configuration``), ``{base}/impostor``
  (a document naming another issuer), ``{base}/broken`` (500), ``{base}/garbage`` (not JSON)
  and ``{base}/plaintext`` (an endpoint that is not https);
- the stream management API (SSF 1.0 §8.1) behind a bearer token, with PATCH / PUT semantics
  as the spec words them;
- a poll endpoint per stream (RFC 8936) that serves the SETs published to it until they are
  acknowledged or reported in ``setErrs``, holds a request up to ``long_poll_wait`` seconds
  when there is nothing to serve and ``returnImmediately`` is false, and records every poll
  request body and every acknowledgement and error;
- the JWKS of its signing key at ``/jwks.json``.

Failure injection: ``fail_polls`` (statuses the next poll requests get), ``iss_override``
(the ``iss`` management answers carry), ``pending_next`` (answer the next update with 202).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.loopback import LoopbackServer
from tests.ssf.helpers import AUDIENCE, Signer, claims, jwks_of

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
STREAM_UPDATED = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
EVENTS_SUPPORTED = [
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
    "https://schemas.openid.net/secevent/caep/event-type/credential-change",
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled",
]
MGMT_TOKEN = "mgmt-token"
_RECEIVER_SUPPLIED = ("delivery", "events_requested", "description")
_TRANSMITTER_SUPPLIED = (
    "iss",
    "aud",
    "events_supported",
    "events_delivered",
    "min_verification_interval",
)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


class FakeTransmitter(LoopbackServer):
    def __init__(self, signer: Signer, *, token: str = MGMT_TOKEN, audience: str = AUDIENCE):
        self.signer = signer
        self.token = token
        self.audience = audience
        self.cond = threading.Condition()
        self.requests: list[Recorded] = []
        self.streams: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.subjects: dict[str, list[dict[str, Any]]] = {}
        self.queues: dict[str, dict[str, str]] = {}
        self.polls: list[dict[str, Any]] = []
        self.poll_answers: list[dict[str, Any]] = []
        self.acked: list[str] = []
        self.set_errs: dict[str, dict[str, Any]] = {}
        self.verifications: list[dict[str, Any]] = []
        self.fail_polls: list[int] = []
        self.long_poll_wait = 0.2
        self.iss_override: str | None = None
        self.pending_next = False
        self._ids = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_PATCH(self) -> None:
                server._handle(self, "PATCH")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.issuer = self.base
        self.jwks_url = f"{self.base}/jwks.json"
        self.documents: dict[str, tuple[int, bytes]] = {
            "/.well-known/ssf-configuration": (200, self._metadata(self.base)),
            "/.well-known/ssf-configuration/tenant1": (200, self._metadata(self.base + "/tenant1")),
            "/.well-known/sse-configuration/sse": (200, self._metadata(self.base + "/sse")),
            "/.well-known/risc-configuration/legacy": (200, self._metadata(self.base + "/legacy")),
            "/.well-known/ssf-configuration/impostor": (
                200,
                self._metadata("https://evil.example"),
            ),
            "/.well-known/ssf-configuration/broken": (500, b'{"error": "down"}'),
            "/.well-known/ssf-configuration/garbage": (200, b"<html>hello</html>"),
            "/.well-known/ssf-configuration/plaintext": (
                200,
                self._metadata(
                    self.base + "/plaintext",
                    configuration_endpoint="http://transmitter.example/ssf/stream",
                ),
            ),
        }

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        with self.cond:  # wake long polls, or shutting down waits for them
            self.long_poll_wait = 0
            self.cond.notify_all()
        super().stop()

    def poll_url(self, stream_id: str) -> str:
        return f"{self.base}/ssf/poll/{stream_id}"

    def sign(self, jti: str, **overrides: Any) -> str:
        """A valid SET from this transmitter for AUDIENCE at NOW (``claims`` overrides)."""
        return self.signer.sign(claims(iss=self.issuer, jti=jti, **overrides))

    def publish(self, stream_id: str, jti: str, token: str | None = None) -> None:
        """Queue a SET on ``stream_id``'s poll endpoint (served until acked or refused)."""
        with self.cond:
            signed = token if token is not None else self.sign(jti)
            self.queues.setdefault(stream_id, {})[jti] = signed
            self.cond.notify_all()

    def paths(self, method: str | None = None) -> list[str]:
        with self.cond:
            return [r.path for r in self.requests if method is None or r.method == method]

    # -- HTTP ------------------------------------------------------------------------------

    def _metadata(self, issuer: str, **overrides: Any) -> bytes:
        base = self.base
        document: dict[str, Any] = {
            "spec_version": "1_0",
            "issuer": issuer,
            "jwks_uri": f"{base}/jwks.json",
            "delivery_methods_supported": [PUSH, POLL],
            "configuration_endpoint": f"{base}/ssf/stream",
            "status_endpoint": f"{base}/ssf/status",
            "add_subject_endpoint": f"{base}/ssf/subjects:add",
            "remove_subject_endpoint": f"{base}/ssf/subjects:remove",
            "verification_endpoint": f"{base}/ssf/verify",
            "critical_subject_members": ["tenant", "user"],
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
            "default_subjects": "NONE",
        }
        document.update(overrides)
        return orjson.dumps(document)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw
        record = Recorded(
            method, parts.path, parse_qs(parts.query), body, handler.headers.get("Authorization")
        )
        with self.cond:
            self.requests.append(record)
        status, payload = self._route(record)
        if payload is None:
            data = b""
        else:
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, r: Recorded) -> tuple[int, Any]:
        if r.method == "GET" and r.path in self.documents:
            status, doc = self.documents[r.path]
            return status, doc
        if r.method == "GET" and r.path.startswith("/.well-known/"):
            return 404, {"error": "not_found"}
        if r.method == "GET" and r.path == "/jwks.json":
            return 200, jwks_of(self.signer)
        if r.authorization != f"Bearer {self.token}":
            return 401, {"error": "invalid_token"}
        if r.path.startswith("/ssf/poll/"):
            return self._poll(r.path.removeprefix("/ssf/poll/"), r.body or {})
        with self.cond:
            routes = {
                "/ssf/stream": self._stream,
                "/ssf/status": self._status,
                "/ssf/subjects:add": self._add_subject,
                "/ssf/subjects:remove": self._remove_subject,
                "/ssf/verify": self._verify,
            }
            route = routes.get(r.path)
            if route is None:
                return 404, {"error": "not_found"}
            return route(r)

    # -- management (call with self.cond held) ---------------------------------------------

    def _iss(self) -> str:
        return self.iss_override or self.issuer

    def _answer(self, stream_id: str) -> dict[str, Any]:
        return {**self.streams[stream_id], "iss": self._iss()}

    def _stream(self, r: Recorded) -> tuple[int, Any]:
        stream_id = (r.query.get("stream_id") or [None])[0]
        body = r.body if isinstance(r.body, dict) else {}
        if r.method == "POST":
            sid = f"stream-{next(self._ids)}"
            delivery = dict(body.get("delivery") or {"method": POLL})
            if delivery.get("method") == POLL:
                delivery["endpoint_url"] = self.poll_url(sid)
            elif delivery.get("method") != PUSH:
                return 400, {"error": "unsupported delivery method"}
            config: dict[str, Any] = {
                "stream_id": sid,
                "iss": self.issuer,
                "aud": [self.audience],
                "delivery": delivery,
                "events_supported": EVENTS_SUPPORTED,
                "min_verification_interval": 0,
            }
            for name in ("events_requested", "description"):
                if name in body:
                    config[name] = body[name]
            self._deliver(config)
            self.streams[sid] = config
            self.statuses[sid] = {"stream_id": sid, "status": "enabled"}
            self.subjects[sid] = []
            return 201, self._answer(sid)
        if r.method == "GET":
            if stream_id is None:
                return 200, [self._answer(sid) for sid in self.streams]
            if stream_id not in self.streams:
                return 404, {"error": "no such stream"}
            return 200, self._answer(stream_id)
        if r.method == "DELETE":
            if stream_id not in self.streams:
                return 404, {"error": "no such stream"}
            del self.streams[stream_id]
            return 204, None
        # PATCH / PUT: stream_id in the body
        sid = body.get("stream_id")
        if not isinstance(sid, str):
            return 400, {"error": "stream_id is required"}
        if sid not in self.streams:
            return 404, {"error": "no such stream"}
        if self.pending_next:
            self.pending_next = False
            return 202, None
        config = self.streams[sid]
        for name in _TRANSMITTER_SUPPLIED:
            if name in body and body[name] != config.get(name):
                return 400, {"error": f"{name} does not match"}
        if r.method == "PUT":
            for name in _RECEIVER_SUPPLIED:
                config.pop(name, None)
            config["delivery"] = {"method": POLL}
        for name in _RECEIVER_SUPPLIED:
            if name in body:
                config[name] = body[name]
        if config["delivery"].get("method") == POLL:
            config["delivery"] = {"method": POLL, "endpoint_url": self.poll_url(sid)}
        self._deliver(config)
        return 200, self._answer(sid)

    @staticmethod
    def _deliver(config: dict[str, Any]) -> None:
        requested = config.get("events_requested") or []
        config["events_delivered"] = [e for e in EVENTS_SUPPORTED if e in requested]

    def _status(self, r: Recorded) -> tuple[int, Any]:
        if r.method == "GET":
            sid = (r.query.get("stream_id") or [None])[0]
            if sid not in self.statuses:
                return 404, {"error": "no such stream"}
            return 200, self.statuses[sid]
        body = r.body if isinstance(r.body, dict) else {}
        sid = body.get("stream_id")
        if sid not in self.statuses:
            return 404, {"error": "no such stream"}
        if body.get("status") not in ("enabled", "paused", "disabled"):
            return 400, {"error": "bad status"}
        status = {"stream_id": sid, "status": body["status"]}
        if "reason" in body:
            status["reason"] = body["reason"]
        self.statuses[sid] = status
        return 200, status

    def _add_subject(self, r: Recorded) -> tuple[int, Any]:
        body = r.body if isinstance(r.body, dict) else {}
        sid = body.get("stream_id")
        if sid not in self.subjects:
            return 404, {"error": "no such stream"}
        if not isinstance(body.get("subject"), dict):
            return 400, {"error": "subject is required"}
        self.subjects[sid].append(body["subject"])
        return 200, None

    def _remove_subject(self, r: Recorded) -> tuple[int, Any]:
        body = r.body if isinstance(r.body, dict) else {}
        sid = body.get("stream_id")
        if sid not in self.subjects:
            return 404, {"error": "no such stream"}
        if body.get("subject") not in self.subjects[sid]:
            return 404, {"error": "subject not in stream"}
        self.subjects[sid].remove(body["subject"])
        return 204, None

    def _verify(self, r: Recorded) -> tuple[int, Any]:
        body = r.body if isinstance(r.body, dict) else {}
        sid = body.get("stream_id")
        if sid not in self.streams:
            return 404, {"error": "no such stream"}
        self.verifications.append(body)
        event: dict[str, Any] = {} if "state" not in body else {"state": body["state"]}
        jti = f"verify-{next(self._ids)}"
        token = self.sign(
            jti,
            txn=None,
            sub_id={"format": "opaque", "id": sid},
            events={VERIFICATION: event},
        )
        self.queues.setdefault(sid, {})[jti] = token
        self.cond.notify_all()
        return 204, None

    # -- RFC 8936 poll ---------------------------------------------------------------------

    def _poll(self, stream_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.cond:
            self.polls.append(body)
            queue = self.queues.setdefault(stream_id, {})
            for jti in body.get("ack") or []:
                self.acked.append(jti)
                queue.pop(jti, None)
            for jti, error in (body.get("setErrs") or {}).items():
                self.set_errs[jti] = error
                queue.pop(jti, None)
            if self.fail_polls:
                return self.fail_polls.pop(0), {"error": "temporarily unavailable"}
            limit = body.get("maxEvents")
            if not queue and limit != 0 and not body.get("returnImmediately", False):
                deadline = time.monotonic() + self.long_poll_wait
                while not queue and time.monotonic() < deadline:
                    self.cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            chosen = list(queue.items())
            if isinstance(limit, int):
                chosen = chosen[:limit]
            answer = {"sets": dict(chosen), "moreAvailable": len(queue) > len(chosen)}
            self.poll_answers.append(answer)
            return 200, answer
