"""A Splunk HTTP Event Collector (HEC) compatible endpoint, so Splunk forwarders, Vector,
Fluent Bit and the OpenTelemetry collector can send to tokenwarden unchanged.

``POST /services/collector/event`` (also ``/services/collector`` and ``…/event/1.0``): one or
more HEC event objects, concatenated or newline separated, each
``{"event": <record>, "time", "host", "source", "sourcetype", "index", "fields"}``; the
record (an object, or a string holding JSON) is normalized in the format the token names,
else the one its ``sourcetype`` maps to (``[ingest.sourcetypes]``), else detected.
``POST /services/collector/raw``: one record per line; ``?sourcetype=`` picks the format.
``GET /services/collector/health``.

Authentication is the HEC token: ``Authorization: Splunk <token>`` — a configured
``[[ingest.hec_tokens]]`` token, or a tokenwarden API key of one tenant with the ``ingest``
scope (``tokenwarden keys create --tenant T --scope ingest``). Each token belongs to one
tenant; a record naming another tenant is rejected. Answers are HEC-shaped:
``{"text": "Success", "code": 0}``; ``401 {"text": "Token is required", "code": 2}``;
``401 … "Invalid authorization", 3``; ``403 … "Invalid token", 4``; ``400 … "No data", 5``;
``400 … "Invalid data format", 6`` (with ``invalid-event-number``); ``503 … "Server is
busy", 9`` when the pipeline is full. A record that cannot be mapped does not fail the
request — the forwarder would resend the whole batch — it is kept for ``GET /v1/rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from ingest import AuditEvent, Rejected, UnknownFormat, iter_ndjson
from tokenwarden.api.deps import PipelineDep, ServicesDep
from tokenwarden.api.errors import ApiError
from tokenwarden.api.events import read_body
from tokenwarden.auth.api_keys import looks_like_key
from tokenwarden.auth.deps import Authenticator
from tokenwarden.auth.principal import Role, Scope
from tokenwarden.formats import normalize
from tokenwarden.pipeline import QueueFull
from tokenwarden.services import Services
from tokenwarden.settings import HecToken

router = APIRouter(tags=["splunk-hec"])


def _hec(text: str, code: int, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"text": text, "code": code, **extra}, status_code=status)


class HecRefusal(Exception):
    def __init__(self, text: str, code: int, status: int, **extra: Any) -> None:
        super().__init__(text)
        self.response = _hec(text, code, status, **extra)


async def _token(request: Request, services: Services) -> HecToken:
    """The HEC token the request carries: an ingest API key of one tenant, or one of the
    configured tokens (constant-time compares against every one)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise HecRefusal("Token is required", 2, 401)
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() not in {"splunk", "bearer"} or not value.strip():
        raise HecRefusal("Invalid authorization", 3, 401)
    if looks_like_key(value.strip()):
        return await _key_token(request, value.strip())
    given = value.strip().encode()
    found: HecToken | None = None
    for token in services.settings.ingest.hec_tokens:
        if hmac.compare_digest(given, token.token.get_secret_value().encode()):
            found = token
    if found is None:
        raise HecRefusal("Invalid token", 4, 403)
    return found


async def _key_token(request: Request, key: str) -> HecToken:
    auth: Authenticator = request.app.state.auth
    principal = await auth.principal(key, now=datetime.now(UTC))
    if principal is None:
        raise HecRefusal("Invalid token", 4, 403)
    allowed = principal.has_scope(Scope.INGEST) or principal.has_role(Role.ADMIN)
    if not allowed or principal.tenant is None:
        # HEC events belong to the token's one tenant: an all-tenants key cannot say which
        raise HecRefusal("Invalid token", 4, 403)
    return HecToken(token=SecretStr(key), tenant=principal.tenant)


def _concatenated(body: bytes) -> Iterator[Any]:
    """HEC event bodies: JSON objects one after another, with or without separators."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    number = 0
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise HecRefusal(
                "Invalid data format", 6, 400, **{"invalid-event-number": number}
            ) from None
        yield value
        number += 1


@dataclass(slots=True)
class _Record:
    record: Any
    fmt: str | None


def _format_of(token: HecToken, sourcetype: Any, services: Services) -> str | None:
    if token.format:
        return token.format
    if isinstance(sourcetype, str):
        return services.settings.ingest.sourcetypes.get(sourcetype)
    return None


def _records(envelopes: list[Any], token: HecToken, services: Services) -> list[_Record]:
    out = []
    for number, env in enumerate(envelopes):
        if not isinstance(env, Mapping) or "event" not in env:
            raise HecRefusal("Event field is required", 12, 400, **{"invalid-event-number": number})
        event = env["event"]
        if event is None or event == "":
            raise HecRefusal(
                "Event field cannot be blank", 13, 400, **{"invalid-event-number": number}
            )
        if isinstance(event, str):
            # a string that is not JSON stays a string: rejected as not an object
            with contextlib.suppress(ValueError):
                event = json.loads(event)
        out.append(_Record(event, _format_of(token, env.get("sourcetype"), services)))
    return out


async def _ingest(
    records: list[_Record],
    *,
    token: HecToken,
    services: Services,
    pipeline: PipelineDep,
    source: str,
) -> JSONResponse:
    if not records:
        return _hec("No data", 5, 400)
    if len(records) > services.limits.max_events:
        return _hec("Too many events", 6, 413)
    events: list[AuditEvent] = []
    rejected: list[Rejected] = []
    # records of one format are normalized together, keeping their indexes
    by_format: dict[str | None, list[int]] = {}
    for i, r in enumerate(records):
        by_format.setdefault(r.fmt, []).append(i)
    items = [r.record for r in records]
    for fmt, indexes in by_format.items():
        try:
            batch = await asyncio.to_thread(
                normalize,
                [items[i] for i in indexes],
                formats=services.formats,
                fmt=fmt,
                hasher=services.hasher,
                tenant=token.tenant,
            )
        except UnknownFormat as exc:
            rejected.extend(Rejected(i, str(exc)) for i in indexes)
            continue
        rejected.extend(Rejected(indexes[r.index], r.reason) for r in batch.rejected)
        # the events come out in record order, skipping the rejected and ignored ones
        skipped = {r.index for r in batch.rejected} | set(batch.ignored)
        kept = [indexes[i] for i in range(len(indexes)) if i not in skipped]
        for index, event in zip(kept, batch.events, strict=True):
            if event.tenant != token.tenant:
                reason = f"tenant {event.tenant!r} is not this token's tenant"
                rejected.append(Rejected(index, reason))
            else:
                events.append(event)
    services.rejected.add(
        rejected=rejected,
        items=items,
        source=source,
        fmt=None,
        tenant=token.tenant,
        at=datetime.now(UTC),
    )
    if events:
        try:
            pipeline.submit(events)
        except QueueFull:
            return JSONResponse(
                {"text": "Server is busy", "code": 9}, status_code=503, headers={"Retry-After": "1"}
            )
    return _hec("Success", 0, 200)


@router.post("/services/collector/event")
@router.post("/services/collector/event/1.0", include_in_schema=False)
@router.post("/services/collector", include_in_schema=False)
async def hec_event(request: Request, services: ServicesDep, pipeline: PipelineDep) -> JSONResponse:
    """HEC event endpoint: concatenated HEC event objects."""
    try:
        token = await _token(request, services)
        body = await read_body(request, services.limits.max_bytes)
        envelopes = list(_concatenated(body))
        records = _records(envelopes, token, services)
    except HecRefusal as exc:
        return exc.response
    except UnicodeDecodeError:
        return _hec("Invalid data format", 6, 400)
    except ApiError:
        return _hec("Request entity too large", 6, 413)
    return await _ingest(
        records,
        token=token,
        services=services,
        pipeline=pipeline,
        source="/services/collector/event",
    )


@router.post("/services/collector/raw")
@router.post("/services/collector/raw/1.0", include_in_schema=False)
async def hec_raw(request: Request, services: ServicesDep, pipeline: PipelineDep) -> JSONResponse:
    """HEC raw endpoint: one JSON record per line (``?sourcetype=`` picks the format)."""
    try:
        token = await _token(request, services)
        body = await read_body(request, services.limits.max_bytes)
    except HecRefusal as exc:
        return exc.response
    except ApiError:
        return _hec("Request entity too large", 6, 413)
    fmt = _format_of(token, request.query_params.get("sourcetype"), services)
    records = [_Record(item, fmt) for item in iter_ndjson(body)]
    return await _ingest(
        records, token=token, services=services, pipeline=pipeline, source="/services/collector/raw"
    )


@router.get("/services/collector/health")
async def hec_health(pipeline: PipelineDep) -> JSONResponse:
    """HEC health: 200 while the pipeline accepts events."""
    return _hec("HEC is healthy", 17, 200, queue_depth=pipeline.depth)
