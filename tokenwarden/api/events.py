"""``POST /v1/events``: batches of audit events from SIEMs, forwarders and gateways."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ingest import AuditEvent, IngestError, NormalizedBatch, Rejected, UnknownFormat, decode
from tokenwarden.api.deps import PipelineDep, ServicesDep
from tokenwarden.api.errors import ApiError
from tokenwarden.auth.deps import Ingest, tenant_filter
from tokenwarden.formats import normalize
from tokenwarden.pipeline import QueueFull

router = APIRouter(prefix="/v1", tags=["events"])


class RejectedEvent(BaseModel):
    index: int
    reason: str


class EventsAccepted(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]
    ignored: int = 0
    detections: int | None = None
    orders: int | None = None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "batch_too_large", f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "batch_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def keep_own_tenant(parsed: NormalizedBatch, tenant: str | None) -> None:
    """Reject (each alone, with its index) the events of a tenant other than ``tenant``
    — a tenant's key writes into its own tenant only. ``None``: every tenant."""
    if tenant is None:
        return
    skipped = {r.index for r in parsed.rejected} | set(parsed.ignored)
    total = len(parsed.events) + len(skipped)
    kept = [i for i in range(total) if i not in skipped]
    events: list[AuditEvent] = []
    for index, event in zip(kept, parsed.events, strict=True):
        if event.tenant == tenant:
            events.append(event)
        else:
            reason = f"tenant {event.tenant!r} is not the tenant of this credential"
            parsed.rejected.append(Rejected(index, reason))
    parsed.rejected.sort(key=lambda r: r.index)
    parsed.events = events


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses={
        400: {"description": "malformed batch"},
        413: {"description": "batch over the byte or event limit"},
        422: {"description": "every event of the batch was rejected"},
        429: {"description": "pipeline queue full; retry after Retry-After seconds"},
    },
)
async def post_events(
    request: Request,
    services: ServicesDep,
    pipeline: PipelineDep,
    principal: Ingest,
    wait: Annotated[bool, Query(description="answer after the batch was processed")] = False,
    format: Annotated[
        str | None,
        Query(
            description="okta | auth0 | keycloak | oidc-provider | native | a configured "
            "mapping; detected per record when absent"
        ),
    ] = None,
    tenant: Annotated[
        str | None, Query(max_length=128, description="tenant for records that name none")
    ] = None,
) -> JSONResponse:
    """Accept a JSON array or NDJSON batch of records: AuditEvents (DESIGN.md wire schema)
    or a vendor's log records (``format=``).

    Valid events go through even when others are rejected; the answer lists the accepted
    count, each rejected index with its reason, and how many records were recognised but
    deliberately ignored (an IdP log event that says nothing about a token).

    Needs the ``ingest`` scope (or the ``admin`` role). A tenant's credential writes into
    its own tenant: records that name none get it, and an event naming another tenant is
    rejected (with its index, like any invalid event); ``tenant=`` naming another is 404.
    """
    own = tenant_filter(principal, tenant)
    tenant = own if principal.tenant is not None else tenant
    body = await read_body(request, services.limits.max_bytes)
    try:
        items = decode(
            body, content_type=request.headers.get("content-type"), limits=services.limits
        )
    except IngestError as exc:
        raise ApiError(exc.status, exc.code, exc.description) from None
    try:
        parsed = await asyncio.to_thread(
            normalize,
            items,
            formats=services.formats,
            fmt=format,
            hasher=services.hasher,
            tenant=tenant or services.settings.ingest.default_tenant,
        )
    except UnknownFormat as exc:
        raise ApiError(400, "unknown_format", str(exc)) from None
    keep_own_tenant(parsed, principal.tenant)
    services.rejected.add(
        rejected=parsed.rejected,
        items=items,
        source="/v1/events",
        fmt=format,
        tenant=tenant or principal.tenant,
        at=datetime.now(UTC),
    )
    rejected = [RejectedEvent(index=r.index, reason=r.reason) for r in parsed.rejected]
    if not parsed.events and parsed.ignored and not parsed.rejected:
        return JSONResponse(
            EventsAccepted(accepted=0, rejected=[], ignored=len(parsed.ignored)).model_dump(),
            status_code=202,
        )
    if not parsed.events:
        raise ApiError(
            422,
            "no_valid_events",
            f"all {len(rejected)} events were rejected",
            extra={"accepted": 0, "rejected": [r.model_dump() for r in rejected]},
        )
    try:
        done = pipeline.submit(parsed.events)
    except QueueFull as exc:
        retry = str(services.settings.retry_after_seconds)
        raise ApiError(429, "queue_full", str(exc), headers={"Retry-After": retry}) from None
    answer = EventsAccepted(
        accepted=len(parsed.events), rejected=rejected, ignored=len(parsed.ignored)
    )
    if wait:
        try:
            result = await done
        except Exception as exc:
            raise ApiError(
                503, "processing_failed", f"the batch could not be processed: {exc}"
            ) from None
        answer.detections = len(result.detections)
        answer.orders = len(result.orders)
    return JSONResponse(answer.model_dump(exclude_none=True), status_code=202)
