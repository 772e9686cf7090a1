"""The SSF push receiver (RFC 8935): authenticate, verify, dedupe, act — in that order.

1. The ``Authorization`` header must be one of the configured transmitters' headers
   (compared in constant time) — else ``authentication_failed`` (401), before any parsing.
2. The SET is verified (``ssf.SetVerifier``: JWS, ``typ``, algorithm allow-list, key by
   ``kid``, issuer, audience, ``iat``, strict profile) — else the RFC 8935 §2.4 error (400).
3. The verified issuer must be a transmitter the header authenticated — else 401; its
   stream must not be ``disabled`` — else ``access_denied`` (403).
4. A ``jti`` already accepted is answered like the first delivery and not acted on again.
5. ``verification`` and ``stream-updated`` events update the stream's row; every other event
   becomes an AuditEvent and goes through the one pipeline (signal detector → policy →
   executor). Only when that batch is processed is the ``jti`` recorded and the SET
   acknowledged: a crash in between makes the transmitter redeliver, never lose it.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import httpx
import sqlalchemy as sa
import structlog
from pydantic import ValidationError

from ingest import AuditEvent, TokenHasher
from ingest.batch import describe
from ingest.security_events import STREAM_EVENTS, SubjectMapping, to_audit_event
from ssf import (
    AccessDenied,
    AuthenticationFailed,
    InvalidRequest,
    JwksCache,
    SetVerifier,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)
from tokenwarden import ssf_jti, ssf_streams
from tokenwarden.pipeline import Extra
from tokenwarden.settings import SsfSettings, TransmitterSettings

log = structlog.get_logger("tokenwarden.ssf")

#: Submits AuditEvents to the pipeline with writes that must commit in the same transaction;
#: resolves once the batch is processed and committed.
Submit = Callable[[list[AuditEvent], Sequence[Extra]], Awaitable[object]]


@dataclass(slots=True)
class ReceiveResult:
    """What one delivery did: ``duplicate`` (already accepted), the events acted on."""

    issuer: str
    jti: str
    duplicate: bool = False
    events: list[AuditEvent] = field(default_factory=list)
    verified_state: bool = False


def policy_of(t: TransmitterSettings) -> TransmitterPolicy:
    return TransmitterPolicy(
        issuer=t.issuer,
        audience=t.audience,
        algorithms=tuple(t.algorithms),
        hmac_secret=t.hmac_secret.get_secret_value().encode() if t.hmac_secret else None,
        strict=t.strict,
        max_bytes=t.max_bytes,
        iat_skew_seconds=t.iat_skew_seconds,
        legacy=t.legacy,
    )


def keys_of(t: TransmitterSettings, *, client: httpx.AsyncClient, min_refresh: float) -> JwksCache:
    if t.jwks is not None:
        return JwksCache(jwks=t.jwks)
    if t.jwks_uri is not None:
        return JwksCache(jwks_uri=t.jwks_uri, client=client, min_refresh_seconds=min_refresh)
    return JwksCache(jwks={"keys": []})  # HMAC-only transmitter


class SsfReceiver:
    """Receives pushed SETs for the configured transmitters."""

    def __init__(
        self,
        settings: SsfSettings,
        *,
        db: sa.Engine,
        hasher: TokenHasher,
        client: httpx.AsyncClient,
        submit: Submit,
        extra_transmitters: Sequence[TransmitterSettings] = (),
    ) -> None:
        self.registry = TransmitterRegistry()
        self.mappings: dict[str, SubjectMapping] = {}
        self.auth: dict[str, bytes | None] = {}
        configured = {t.issuer for t in settings.transmitters}
        self.transmitters = [
            *settings.transmitters,
            *(t for t in extra_transmitters if t.issuer not in configured),
        ]
        for t in self.transmitters:
            self.registry.add(
                policy_of(t),
                keys_of(t, client=client, min_refresh=settings.jwks_min_refresh_seconds),
            )
            self.mappings[t.issuer] = SubjectMapping(
                tenant=t.tenant,
                tenant_from_subject=t.tenant_from_subject,
                application_as=t.application_as,
            )
            header = t.authorization_header
            if t.delivery == "push":
                self.auth[t.issuer] = header.get_secret_value().encode() if header else None
        self.verifier = SetVerifier(self.registry)
        self.jti = ssf_jti.SqlJtiStore(db)
        self.retention = timedelta(seconds=settings.jti_retention_seconds)
        self.db = db
        self.hasher = hasher
        self.submit = submit

    @property
    def max_bytes(self) -> int:
        return self.registry.max_bytes

    def authenticated(self, authorization: str | None) -> set[str]:
        """The issuers whose configured header this request carries (constant-time compares,
        every one of them, so timing says nothing about which or how much matched)."""
        given = (authorization or "").encode()
        out: set[str] = set()
        for issuer, expected in self.auth.items():
            if expected is None or hmac.compare_digest(given, expected):
                out.add(issuer)
        return out

    async def receive(
        self, body: bytes, *, authorization: str | None, now: datetime
    ) -> ReceiveResult:
        """Act on one pushed SET; raises ``ssf.SsfError`` (and ``QueueFull``) to refuse."""
        allowed = self.authenticated(authorization)
        if not allowed:
            raise AuthenticationFailed("missing or wrong Authorization header")
        verified = await self.verifier.verify(body, now=now)
        if verified.issuer not in allowed:
            raise AuthenticationFailed("the Authorization header is not this issuer's")
        disabled, seen = await asyncio.to_thread(self._precheck, verified, now)
        if disabled:
            raise AccessDenied(f"the stream from {verified.issuer} is disabled")
        result = ReceiveResult(issuer=verified.issuer, jti=verified.jti)
        if seen:
            result.duplicate = True
            return result
        result.events, result.verified_state = await self._act(verified, now)
        return result

    async def accept(self, verified: VerifiedSet, *, now: datetime) -> None:
        """Act on a SET that arrived by poll (RFC 8936) and was verified by the poll client:
        the same path as a push after authentication. Returns once durably accepted."""
        disabled, seen = await asyncio.to_thread(self._precheck, verified, now)
        if disabled:
            raise AccessDenied(f"the stream from {verified.issuer} is disabled")
        if not seen:
            await self._act(verified, now)

    def _precheck(self, verified: VerifiedSet, now: datetime) -> tuple[bool, bool]:
        """(stream disabled, jti already accepted) in one round trip to the store."""
        with self.db.connect() as conn:
            return (
                ssf_streams.is_disabled(conn, issuer=verified.issuer),
                ssf_jti.seen(conn, issuer=verified.issuer, jti=verified.jti, now=now),
            )

    def to_events(self, verified: VerifiedSet) -> list[AuditEvent]:
        """The AuditEvents of a verified SET's security events (stream events excluded)."""
        mapping = self.mappings[verified.issuer]
        events: list[AuditEvent] = []
        for event in verified.events:
            if event.event_name in STREAM_EVENTS:
                continue
            data = to_audit_event(event, mapping)
            try:
                events.append(AuditEvent.model_validate(data, context={"hasher": self.hasher}))
            except ValidationError as exc:
                raise InvalidRequest(f"the event cannot be mapped: {describe(exc)}") from None
        return events

    async def _act(self, verified: VerifiedSet, now: datetime) -> tuple[list[AuditEvent], bool]:
        """Stream events first; then the security events go through the pipeline with the
        jti recorded in the batch's transaction (acknowledged = durably acted on)."""
        events = self.to_events(verified)
        verified_state = False
        if any(e.event_name in STREAM_EVENTS for e in verified.events):
            verified_state = await asyncio.to_thread(self._stream_events, verified, now)
        mark = partial(
            ssf_jti.add,
            issuer=verified.issuer,
            jti=verified.jti,
            now=now,
            retention=self.retention,
        )
        if events:
            await self.submit(events, [mark])
            log.debug(
                "ssf events accepted",
                issuer=verified.issuer,
                jti=verified.jti,
                events=[e.action for e in events],
            )
        else:
            await asyncio.to_thread(self._mark, mark)
        return events, verified_state

    def _mark(self, mark: Extra) -> None:
        with self.db.begin() as conn:
            mark(conn)

    def _stream_events(self, verified: VerifiedSet, now: datetime) -> bool:
        confirmed = False
        with self.db.begin() as conn:
            for event in verified.events:
                if event.event_name == "verification":
                    state = event.claims.get("state")
                    confirmed |= ssf_streams.record_verification(
                        conn,
                        issuer=verified.issuer,
                        state=state if isinstance(state, str) else None,
                        now=now,
                    )
                    log.info(
                        "ssf verification received", issuer=verified.issuer, confirmed=confirmed
                    )
                elif event.event_name == "stream_updated":
                    status = event.claims.get("status")
                    reason = event.claims.get("reason")
                    if isinstance(status, str):
                        ssf_streams.record_stream(
                            conn,
                            issuer=verified.issuer,
                            now=now,
                            status=status,
                            reason=reason if isinstance(reason, str) else None,
                        )
                        log.info("ssf stream updated", issuer=verified.issuer, status=status)
        return confirmed
