"""Connecting SSF transmitters: ``tokenwarden ssf connect | status | verify``.

``connect`` discovers the transmitter (SSF 1.0 §7.2), creates a stream (§8.1.1.1) that
delivers every event type we act on (``ssf.SUPPORTED_EVENTS``) by push to our
``/ssf/events`` with a freshly generated ``Authorization`` header, or by poll from the
endpoint the transmitter supplies, and records the transmitter and its stream in the
database (``ssf_streams``): the service picks it up at its next start, next to the
transmitters of the config file. ``status`` reads each stream's status from the
transmitter (§8.1.2) and records it. ``verify`` asks for a verification event with a
random ``state`` (§8.1.4) and waits until the running service has received it with the
same state.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from ssf import (
    SUPPORTED_EVENTS,
    PollDelivery,
    PushDelivery,
    StreamClient,
    TransmitterConfig,
    discover,
    verification_state,
)
from tokenwarden import ssf_streams
from tokenwarden.settings import TransmitterSettings


def stored_transmitters(db: sa.Engine) -> list[TransmitterSettings]:
    """The transmitters ``connect`` recorded (``ssf_streams.config["transmitter"]``)."""
    with db.connect() as conn:
        rows = ssf_streams.list_streams(conn)
    out = []
    for row in rows:
        config = row.config or {}
        if isinstance(config.get("transmitter"), dict):
            out.append(TransmitterSettings.model_validate(config["transmitter"]))
    return out


@dataclass(frozen=True, slots=True)
class Connected:
    transmitter: TransmitterSettings
    stream_id: str
    delivery: str
    events_delivered: tuple[str, ...]


async def connect(
    issuer: str,
    *,
    audience: str,
    db: sa.Engine,
    client: httpx.AsyncClient,
    token: str | None,
    poll: bool,
    push_url: str | None,
    tenant: str,
    now: datetime,
) -> Connected:
    """Discover ``issuer``, create our stream there and record it (see the module doc)."""
    config = await discover(issuer, client=client)
    if config.jwks_uri is None:
        raise ValueError(f"{issuer} publishes no jwks_uri: its SETs could not be verified")
    streams = StreamClient(config, client=client, token=token, audience=audience)
    authorization: str | None = None
    if poll:
        delivery: PushDelivery | PollDelivery = PollDelivery()
    else:
        if not push_url:
            raise ValueError("push delivery needs --push-url: where the transmitter reaches us")
        authorization = "Bearer " + secrets.token_urlsafe(32)
        delivery = PushDelivery(endpoint_url=push_url, authorization_header=authorization)
    stream = await streams.create(delivery, SUPPORTED_EVENTS, description="tokenwarden")
    poll_endpoint = stream.delivery.endpoint_url if poll else None
    if poll and not poll_endpoint:
        raise ValueError(f"{issuer} created a poll stream without an endpoint_url")
    settings = TransmitterSettings(
        issuer=config.issuer,
        audience=audience,
        jwks_uri=config.jwks_uri,
        authorization_header=authorization,
        tenant=tenant,
        delivery="poll" if poll else "push",
        poll_endpoint=poll_endpoint,
        bearer_token=token,
        stream_id=stream.stream_id,
    )
    record = {
        "transmitter": _secret_dump(settings),
        "stream": stream.model_dump(mode="json", exclude={"delivery"}),
        "configuration": config.raw,
    }
    with db.begin() as conn:
        ssf_streams.record_stream(
            conn,
            issuer=config.issuer,
            now=now,
            status="enabled",
            stream_id=stream.stream_id,
            config=record,
        )
    return Connected(settings, stream.stream_id, settings.delivery, stream.events_delivered)


def _secret_dump(settings: TransmitterSettings) -> dict[str, Any]:
    data = settings.model_dump(mode="json", exclude_none=True)
    for name in ("authorization_header", "bearer_token", "hmac_secret"):
        value = getattr(settings, name)
        if value is not None:
            data[name] = value.get_secret_value()
    return data


async def _client_for(
    t: TransmitterSettings, client: httpx.AsyncClient
) -> tuple[StreamClient, TransmitterConfig]:
    config = await discover(t.issuer, client=client)
    token = t.bearer_token.get_secret_value() if t.bearer_token else None
    return StreamClient(config, client=client, token=token, audience=t.audience), config


async def status(
    db: sa.Engine, *, client: httpx.AsyncClient, now: datetime
) -> list[dict[str, Any]]:
    """Each recorded stream's status as the transmitter reports it (recorded too)."""
    out: list[dict[str, Any]] = []
    for t in stored_transmitters(db):
        entry: dict[str, Any] = {
            "issuer": t.issuer,
            "stream_id": t.stream_id,
            "delivery": t.delivery,
        }
        try:
            streams, _ = await _client_for(t, client)
            assert t.stream_id is not None
            remote = await streams.get_status(t.stream_id)
            entry["status"] = remote.status
            with db.begin() as conn:
                ssf_streams.record_stream(
                    conn,
                    issuer=t.issuer,
                    now=now,
                    status=remote.status,
                    reason=getattr(remote, "reason", None),
                )
        except Exception as exc:  # report, keep going with the other transmitters
            entry["error"] = f"{type(exc).__name__}: {exc}"
        with db.connect() as conn:
            row = ssf_streams.get_stream(conn, issuer=t.issuer)
        if row is not None:
            entry["recorded_status"] = row.status
            entry["verified_at"] = row.verified_at.isoformat() if row.verified_at else None
        out.append(entry)
    return out


async def verify(
    issuer: str,
    *,
    db: sa.Engine,
    client: httpx.AsyncClient,
    wait_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> bool:
    """Request a verification event and wait until the service received its ``state``."""
    found = [t for t in stored_transmitters(db) if t.issuer == issuer]
    if not found or not found[0].stream_id:
        raise ValueError(f"no stream recorded for {issuer}; run `tokenwarden ssf connect` first")
    t = found[0]
    stream_id = t.stream_id
    assert stream_id is not None
    state = verification_state()
    with db.begin() as conn:
        ssf_streams.request_verification(conn, issuer=issuer, state=state, now=clock())
    streams, _ = await _client_for(t, client)
    await streams.request_verification(stream_id, state)
    started = clock()
    while (clock() - started).total_seconds() < wait_seconds:
        with db.connect() as conn:
            row = ssf_streams.get_stream(conn, issuer=issuer)
        if row is not None and row.verified_at is not None and row.verification_state == state:
            return True
        await sleep(0.2)
    return False
