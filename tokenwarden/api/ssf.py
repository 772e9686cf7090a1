"""``POST /ssf/events``: the RFC 8935 push endpoint for SSF transmitters.

202 with an empty body when the SET was accepted (or had been before); 400 with
``{"err": …, "description": …}`` and the RFC 8935 §2.4 code when it is refused, 401 for
``authentication_failed``, 403 for ``access_denied``. Nothing a transmitter sends gets a
5xx: only our own faults do (503 with Retry-After, so the transmitter redelivers rather
than the signal being lost), and a full pipeline answers 429 with Retry-After.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ssf import InvalidRequest, SsfError
from tokenwarden.pipeline import QueueFull
from tokenwarden.ssf_receiver import SsfReceiver

router = APIRouter(tags=["ssf"])
log = structlog.get_logger("tokenwarden.ssf")

SET_MEDIA_TYPE = "application/secevent+jwt"


def _refuse(exc: SsfError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidRequest(f"the body is {declared} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"the body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/ssf/events",
    status_code=202,
    responses={
        202: {"description": "accepted (RFC 8935 §2.3); empty body"},
        400: {"description": "refused: RFC 8935 §2.4 error body"},
        401: {"description": "authentication_failed"},
        403: {"description": "access_denied (stream disabled)"},
        429: {"description": "pipeline full; redeliver after Retry-After"},
        503: {"description": "our fault; redeliver after Retry-After"},
    },
)
async def push(request: Request) -> Response:
    """Receive one Security Event Token (``Content-Type: application/secevent+jwt``)."""
    receiver: SsfReceiver = request.app.state.ssf
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != SET_MEDIA_TYPE:
        # RFC 8935 §2 says the transmitter MUST send this type; some get it wrong
        log.warning(
            "ssf push with content type other than application/secevent+jwt",
            content_type=ctype[:100],
        )
    try:
        body = await _body(request, receiver.max_bytes)
        result = await receiver.receive(
            body, authorization=request.headers.get("authorization"), now=datetime.now(UTC)
        )
    except SsfError as exc:
        log.info("ssf push refused", err=exc.err, description=exc.description)
        return _refuse(exc)
    except QueueFull as exc:
        return JSONResponse(
            {"error": "queue_full", "detail": str(exc)},
            status_code=429,
            headers={"Retry-After": "1"},
        )
    except Exception:
        log.exception("ssf push failed on our side")
        return JSONResponse(
            {"error": "unavailable", "detail": "try again later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    if result.duplicate:
        log.info("ssf push redelivered; already acted on", issuer=result.issuer, jti=result.jti)
    return Response(status_code=202)
