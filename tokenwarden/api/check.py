"""``POST /v1/check``: may this token / family / agent / user still be used?

The veto a gateway or token broker asks before it forwards a call or refreshes a token.
With a ``redis`` adapter configured (``check = true``, the default) the denylist is read
first — one MGET of every key the request names; a hit is the answer. A miss, a request
without a tenant, or Redis being unreachable falls through to the store, which is the
source of truth. Fail closed: anything revoked or under an active kill switch is denied,
with the reason and the order or kill switch behind it; ``source`` says who answered.

Needs the ``check`` scope (or any role). A tenant's credential asks about its own tenant:
a request without ``tenant`` gets it, one naming another tenant is 404.

This is the hot path of every gateway: ``CheckFastPath`` (ASGI middleware) answers a
well-formed, authorised check before FastAPI's routing and request handling, which cost
more server time than a Redis-answered check itself; anything it does not answer goes to
the route, which gives the usual error documents. Both read the body and the credential
themselves (``_answer``), not through dependency injection; ``openapi_extra`` documents
the same body and schemes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import redis
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from revocation import store
from revocation.store.checks import CheckResult
from tokenwarden.auth.deps import permitted, principal_of, tenant_filter
from tokenwarden.auth.principal import Role, Scope
from tokenwarden.services import Services

log = structlog.get_logger("tokenwarden.check")

router = APIRouter(prefix="/v1", tags=["check"])


class CheckRequest(BaseModel):
    """Any combination of identifiers; every one given must be clear for ``allow``.

    ``token_id`` may be the raw token a gateway holds: it is replaced by its keyed hash
    before it is looked up (and never stored or logged).
    """

    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(default=None, max_length=128)
    token_id: str | None = Field(default=None, max_length=16384)
    family_id: str | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=512)
    agent: str | None = Field(default=None, max_length=512)
    client_id: str | None = Field(default=None, max_length=512)
    session_id: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _something(self) -> CheckRequest:
        if not any(
            (
                self.token_id,
                self.family_id,
                self.user,
                self.agent,
                self.client_id,
                self.session_id,
                self.tenant,
            )
        ):
            raise ValueError(
                "name at least one of token_id, family_id, user, agent, "
                "client_id, session_id, tenant"
            )
        return self


class CheckResponse(BaseModel):
    allow: bool
    reason: str
    order_id: str | None = None
    kill_switch_id: str | None = None
    source: str = Field(default="database", description="who answered: redis or database")


def _db_check(services: Services, tenant: str | None, ids: dict[str, str | None]) -> CheckResult:
    with services.db.connect() as conn:
        return store.check(conn, tenant=tenant, now=datetime.now(UTC), **ids)


@router.post(
    "/check",
    response_model=CheckResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CheckRequest.model_json_schema()}},
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    },
)
async def check(request: Request) -> Response:
    """Allow or deny, with the reason and the order or kill switch behind a denial.

    A Redis hit is answered on the event loop; the store is asked in a worker thread."""
    return Response(await _answer(request, await request.body()), media_type="application/json")


async def _answer(request: Request, raw: bytes) -> bytes:
    """The ``CheckResponse`` document for a request with body ``raw``; raises what the
    route answers with an error document (401, 403, 404, 422)."""
    started = time.perf_counter()
    principal = permitted(await principal_of(request), Scope.CHECK, or_role=Role.VIEWER)
    try:
        body = CheckRequest.model_validate_json(raw)
    except ValidationError as exc:  # the same 422 document as every other route's
        raise RequestValidationError(exc.errors(include_url=False)) from None
    tenant = tenant_filter(principal, body.tenant)
    services: Services = request.app.state.services
    token_id = services.hasher.identifier(body.token_id) if body.token_id else None
    ids = {
        "token_id": token_id,
        "family_id": body.family_id,
        "user": body.user,
        "agent": body.agent,
        "client_id": body.client_id,
        "session_id": body.session_id,
    }
    runtime = getattr(request.app.state, "revocation", None)
    reader = runtime.reader if runtime is not None else None
    result: CheckResult | None = None
    source = "redis"
    if reader is not None:
        try:
            result = await reader.acheck(tenant=tenant, **ids)
        except redis.RedisError as exc:
            log.warning("denylist unreachable; checking the store", error=str(exc))
    if result is None:
        source = "database"
        result = await run_in_threadpool(_db_check, services, tenant, ids)
    if runtime is not None:
        runtime.metrics.checked(
            allow=result.allow, source=source, seconds=time.perf_counter() - started
        )
    # the document CheckResponse describes, serialised directly (the hot path of gateways)
    return orjson.dumps(
        {
            "allow": result.allow,
            "reason": result.reason,
            "order_id": result.order_id,
            "kill_switch_id": result.kill_switch_id,
            "source": source,
        }
    )


#: A check body is a few hundred bytes; one past this goes the route's way (413/422).
MAX_FAST_BODY = 64 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]


class CheckFastPath:
    """ASGI middleware: ``POST /v1/check`` answered before Starlette's exception
    middleware, the router and FastAPI's request handling (measured: more of a Redis-hit
    check's server time than the check itself). A request the answer refuses — no or a
    bad credential, a malformed body, a store failure — is passed on, its body replayed,
    to the route, which answers it with the usual error document. Every other request
    passes straight through. Add middleware of ours that must see checks outside this.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/check" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_FAST_BODY:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(chunks, message, receive, more=True), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        if not more:
            try:
                document: bytes | None = await _answer(Request(scope), b"".join(chunks))
            except Exception:  # the route answers it (and its error document)
                document = None
            if document is not None:
                headers = [*_JSON_HEADERS, (b"content-length", str(len(document)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": document})
                return
        await self.app(scope, _replay(chunks, None, receive, more=more), send)


def _replay(
    chunks: list[bytes], last: Message | None, receive: Receive, *, more: bool = False
) -> Receive:
    """A ``receive`` that gives the body already read, then what ``receive`` still has."""
    pending: list[Message] = (
        [{"type": "http.request", "body": b"".join(chunks), "more_body": more}] if chunks else []
    )
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
