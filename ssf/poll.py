"""Poll-based SET delivery (RFC 8936), the receiving side: :class:`PollClient`.

Each round is one ``POST`` to the transmitter's poll endpoint (SSF 1.0 §6.1.2: "The URL
where events can be retrieved from. This is specified by the Transmitter"), carrying the
acknowledgements and errors of the round before (RFC 8936 §2.4.3, §2.4.4)::

    {"maxEvents": 100, "returnImmediately": false,
     "ack": ["<jti>", ...], "setErrs": {"<jti>": {"err": "...", "description": "..."}}}

and answered by ``{"sets": {"<jti>": "<SET>", ...}, "moreAvailable": true|false}``.

The request members, RFC 8936 §2.2:

- ``maxEvents``: "the maximum number of unacknowledged SETs to be returned". A value of 0 "MAY
  be used by SET Recipients that would like to perform an acknowledge-only request" — what
  :meth:`PollClient.flush` sends.
- ``returnImmediately``: "The default value is false, which indicates the request is to be
  treated as an HTTP long poll [...]. The timeout for the request is part of the
  configuration between the participants" -> ``long_poll_seconds`` is that agreed wait, and
  the read timeout of a long poll is that plus ``timeout``, so a transmitter that holds the
  request for its whole wait is not mistaken for a dead one.
- ``ack``: "the jti [...] values of successfully received SETs [...]. Once a SET has been
  acknowledged, the SET Transmitter is released from any obligation to retain the SET", and
  RFC 8936 §2: "Once a SET is acknowledged, the SET Recipient SHALL be responsible for
  retention". So a SET is acknowledged only after ``accept`` returned — after it is durably
  ours. If ``accept`` raises, the SET is neither acknowledged nor reported: the transmitter
  keeps it and serves it again (the response, RFC 8936 §2.3: "both SETs being transmitted
  for the first time and SETs that are being retransmitted after not having been
  acknowledged are communicated here"), and the next delivery calls ``accept`` again. The
  one exception is a deliberate refusal: ``accept`` raising an
  :class:`~ssf.errors.SsfError` (say ``invalid_request`` for a subject whose critical member
  it cannot process — SSF 1.0 §3: "An SSF Receiver MUST discard any event that contains a
  Subject with a Critical member that it is unable to process") reports the SET in
  ``setErrs`` with that code instead.
- ``setErrs``: the ``jti`` values "of invalid SETs received", each with the ``err`` and
  ``description`` of RFC 8935 §2.3 -> a SET the :class:`~ssf.verify.SetVerifier` refuses is
  reported with exactly the :class:`~ssf.errors.SsfError` code (RFC 8935 §2.4 registry).

The response members, RFC 8936 §2.3: ``sets`` ("Each member name is the jti of a SET to be
delivered, and its value is a JSON string representing the corresponding SET") and
``moreAvailable`` ("This member MAY be omitted, with the meaning being the same as including
it with the boolean value false"). :meth:`PollClient.run` polls again at once while
``moreAvailable`` is true.

Redelivery, RFC 8936 §2.4: "a SET Transmitter MAY redeliver SETs it has previously delivered.
The SET Recipient SHOULD accept repeat SETs and acknowledge the SETs regardless of whether the
Recipient believes it has already acknowledged the SETs previously" -> a ``jti`` the
:class:`~ssf.replay.JtiStore` has already seen is acknowledged again without calling
``accept``. The store records a ``jti`` when it is checked, before ``accept`` runs; when
``accept`` then fails, the client remembers the pair so that the redelivery is accepted
again rather than taken for a duplicate, and, if the store has a ``forget`` method
(:class:`ForgettingJtiStore`), it is called so that a restarted process does the same.

Errors of the exchange itself (no answer, a non-200 status, a body that is not a poll
response) back :meth:`PollClient.run` off exponentially, with jitter, up to a cap
(:class:`Backoff`); acknowledgements not yet delivered stay queued and go out with the next
request that succeeds, and :meth:`PollClient.run` sends them in an acknowledge-only request
when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import httpx

from ssf.errors import ErrorCode, InvalidIssuer, InvalidRequest, SsfError, excerpt
from ssf.remote import DEFAULT_MAX_RESPONSE_BYTES, TokenSource, insecure, send
from ssf.replay import JtiStore
from ssf.verify import SetVerifier, VerifiedSet

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``accept``: durably take one verified SET (write it to the outbox / database). Returning
#: means it is ours and may be acknowledged; raising means it is not, and it is redelivered.
Accept = Callable[[VerifiedSet], Awaitable[None]]

_MAX_UNACCEPTED: Final = 10_000


@runtime_checkable
class ForgettingJtiStore(JtiStore, Protocol):
    """A :class:`~ssf.replay.JtiStore` that can drop a pair it recorded.

    The poll client calls :meth:`forget` when ``accept`` fails for a SET whose ``jti`` it
    has just recorded, so that the redelivery is not taken for a duplicate even after a
    restart. Durable stores should implement it.
    """

    async def forget(self, issuer: str, jti: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SetError:
    """One ``setErrs`` entry: an RFC 8935 §2.4 code and a description."""

    err: ErrorCode
    description: str

    def to_wire(self) -> dict[str, str]:
        return {"err": self.err, "description": self.description}

    @classmethod
    def of(cls, error: SsfError) -> SetError:
        return cls(error.err, error.description)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one round brought, by ``jti`` (the member names of ``sets``).

    ``accepted``: ``accept`` returned, acknowledged in the next request. ``duplicates``:
    already accepted before, acknowledged without calling ``accept``. ``errors``: refused by
    the verifier (or by ``accept`` raising an ``SsfError``), reported in ``setErrs`` in the
    next request. ``failed``: ``accept`` (or the jti store) raised anything else — neither
    acknowledged nor reported, so the transmitter delivers them again.
    """

    received: tuple[str, ...]
    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]
    errors: Mapping[str, SetError]
    failed: tuple[str, ...]
    more_available: bool


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, capped.

    The delay before retry ``attempt`` (0-based) is
    ``min(maximum, initial * multiplier ** attempt)``, shortened by a random fraction of at
    most ``jitter`` so that many receivers do not retry in step.
    """

    initial: float = 1.0
    maximum: float = 120.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs multiplier >= 1 and 0 <= jitter < 1")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first)."""
        exponent = min(max(attempt, 0), 64)
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        return base * (1.0 - self.jitter * rng.random())


class PollClient:
    """Polls one transmitter's RFC 8936 endpoint, verifies, accepts and acknowledges SETs.

    ``issuer``, if given, must be the ``iss`` of every SET (SSF 1.0 §4.1.6: it "MUST match
    the "iss" value in the Stream Configuration data for the stream that the event is sent
    on"); otherwise any transmitter the verifier knows is accepted. ``retention`` is how long
    the jti store remembers an accepted SET. ``interval`` is the pause between short polls
    (``return_immediately``) and ``idle_pause`` the pause after a long poll that came back
    empty (a transmitter that does not hold the request must not make us spin).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client: httpx.AsyncClient,
        verifier: SetVerifier,
        accept: Accept,
        jti_store: JtiStore,
        token: TokenSource = None,
        max_events: int = 100,
        return_immediately: bool = False,
        backoff: Backoff | None = None,
        issuer: str | None = None,
        long_poll_seconds: float = 30.0,
        timeout: float = 10.0,
        interval: float = 5.0,
        idle_pause: float = 1.0,
        retention: timedelta = timedelta(days=7),
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        allow_http: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        why = insecure(endpoint, allow_http=allow_http)
        if why is not None:
            raise ValueError(f"poll endpoint {why} (SSF 1.0 §6.1.2)")
        if max_events < 1:
            raise ValueError("max_events must be at least 1 (0 is the acknowledge-only flush)")
        if long_poll_seconds < 0 or timeout <= 0 or interval < 0 or idle_pause < 0:
            raise ValueError("timeouts must be > 0 and pauses >= 0")
        self.endpoint = endpoint
        self.verifier = verifier
        self.accept = accept
        self.jti_store = jti_store
        self.max_events = max_events
        self.return_immediately = return_immediately
        self.backoff = backoff if backoff is not None else Backoff()
        self.issuer = issuer
        self.long_poll_seconds = long_poll_seconds
        self.interval = interval
        self.idle_pause = idle_pause
        self.retention = retention
        self.max_bytes = max_bytes
        self._client = client
        self._token = token
        self._timeout = timeout
        self._rng = rng if rng is not None else random.Random()
        self._acks: dict[str, None] = {}
        self._errs: dict[str, SetError] = {}
        self._unaccepted: dict[tuple[str, str], None] = {}
        self._lock = asyncio.Lock()

    @property
    def timeout(self) -> httpx.Timeout:
        """The request timeout: a long poll may be held ``long_poll_seconds`` before the
        transmitter answers, so its read timeout is that plus ``timeout``."""
        read = self._timeout if self.return_immediately else self.long_poll_seconds + self._timeout
        return httpx.Timeout(self._timeout, read=read)

    @property
    def outstanding(self) -> tuple[tuple[str, ...], Mapping[str, SetError]]:
        """The acknowledgements and errors the next request will carry."""
        return tuple(self._acks), MappingProxyType(dict(self._errs))

    async def poll_once(self, *, now: datetime) -> PollResult:
        """One round: send the outstanding acks and errors, receive, verify and accept.

        Raises :class:`~ssf.remote.StreamError` when the exchange fails and
        :class:`~ssf.errors.InvalidRequest` when the answer is not a poll response; the
        outstanding acknowledgements are then kept for the next round.
        """
        sets, more = await self._exchange(self.max_events, self.return_immediately)
        return await self._process(sets, more, now=now)

    async def flush(self) -> bool:
        """Deliver outstanding acks and errors in an acknowledge-only request (RFC 8936
        §2.4.2: ``maxEvents`` 0). True if there was nothing to send or it was delivered."""
        if not self._acks and not self._errs:
            return True
        try:
            await self._exchange(0, True)
        except Exception as error:
            log.warning("ssf poll: could not deliver acknowledgements: %s", error)
            return False
        return True

    async def run(
        self,
        *,
        stop: asyncio.Event,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """Poll until ``stop`` is set, then deliver the outstanding acknowledgements.

        Polls again at once while ``moreAvailable``; pauses ``interval`` between short polls
        and ``idle_pause`` after an empty long poll; backs off (:class:`Backoff`) after a
        failed exchange. ``stop`` interrupts a long poll in flight and any pause: SETs of an
        interrupted poll were not acknowledged, so the transmitter serves them again.
        ``clock`` gives the time SETs are verified at; ``sleep`` does the waiting.
        """
        attempt = 0
        while not stop.is_set():
            try:
                answer = await _until(
                    self._exchange(self.max_events, self.return_immediately), stop
                )
            except Exception as error:  # StreamError, a malformed answer, a failing token source
                delay = self.backoff.delay(attempt, self._rng)
                attempt += 1
                log.warning(
                    "ssf poll %s failed, retrying in %.1f s: %s", self.endpoint, delay, error
                )
                await _until(sleep(delay), stop)
                continue
            if answer is None:
                break
            attempt = 0
            sets, more = answer
            result = await self._process(sets, more, now=clock())
            if result.more_available:
                continue
            if self.return_immediately:
                await _until(sleep(self.interval), stop)
            elif not result.received:
                await _until(sleep(self.idle_pause), stop)
        await self.flush()

    async def _exchange(
        self, max_events: int, return_immediately: bool
    ) -> tuple[dict[str, Any], bool]:
        async with self._lock:
            acks = list(self._acks)
            errs = dict(self._errs)
            body = {
                "maxEvents": max_events,
                "returnImmediately": return_immediately,
                "ack": acks,
                "setErrs": {jti: error.to_wire() for jti, error in errs.items()},
            }
            timeout = self.timeout if not return_immediately else httpx.Timeout(self._timeout)
            reply = await send(
                self._client,
                "POST",
                self.endpoint,
                expect={200},
                token=self._token,
                body=body,
                timeout=timeout,
                max_bytes=self.max_bytes,
            )
            # Delivered: the transmitter has them (a repeat would be harmless anyway).
            for jti in acks:
                self._acks.pop(jti, None)
            for jti in errs:
                self._errs.pop(jti, None)
        document = reply.json_object("the poll response")
        sets = document.get("sets", {})
        more = document.get("moreAvailable", False)
        if not isinstance(sets, dict):
            raise InvalidRequest("the poll response's sets member is not an object (RFC 8936 §2.3)")
        if not isinstance(more, bool):
            raise InvalidRequest(
                "the poll response's moreAvailable is not a boolean (RFC 8936 §2.3)"
            )
        return sets, more

    async def _process(self, sets: dict[str, Any], more: bool, *, now: datetime) -> PollResult:
        accepted: list[str] = []
        duplicates: list[str] = []
        errors: dict[str, SetError] = {}
        failed: list[str] = []
        for jti, token in sets.items():
            outcome = await self._one(jti, token, now)
            if isinstance(outcome, SetError):
                errors[jti] = outcome
                self._errs[jti] = outcome
            elif outcome == "accepted":
                accepted.append(jti)
                self._acks[jti] = None
            elif outcome == "duplicate":
                duplicates.append(jti)
                self._acks[jti] = None
            else:
                failed.append(jti)
        return PollResult(
            received=tuple(sets),
            accepted=tuple(accepted),
            duplicates=tuple(duplicates),
            errors=MappingProxyType(errors),
            failed=tuple(failed),
            more_available=more,
        )

    async def _one(self, jti: str, token: Any, now: datetime) -> SetError | str:
        if not isinstance(token, str):
            return SetError("invalid_request", "the SET is not a JSON string (RFC 8936 §2.3)")
        try:
            verified = await self.verifier.verify(token, now=now)
            if verified.jti != jti:
                raise InvalidRequest(
                    f"the SET's jti {excerpt(verified.jti)} is not its name in sets "
                    f"{excerpt(jti)} (RFC 8936 §2.3)"
                )
            if self.issuer is not None and verified.issuer != self.issuer:
                raise InvalidIssuer(
                    f"iss {excerpt(verified.issuer)} is not this stream's issuer (SSF 1.0 §4.1.6)"
                )
        except SsfError as error:
            log.info("ssf poll: refused SET %s: %s", excerpt(jti), error)
            return SetError.of(error)
        except Exception:
            log.exception("ssf poll: verifying SET %s failed unexpectedly", excerpt(jti))
            return "failed"
        key = (verified.issuer, verified.jti)
        try:
            seen = await self.jti_store.seen_or_add(
                verified.issuer, verified.jti, now=now, retention=self.retention
            )
        except Exception:
            log.exception("ssf poll: the jti store failed for SET %s", excerpt(jti))
            return "failed"
        if seen and key not in self._unaccepted:
            return "duplicate"
        try:
            await self.accept(verified)
        except asyncio.CancelledError:
            await self._unaccept(key)
            raise
        except SsfError as error:
            log.info("ssf poll: accept refused SET %s: %s", excerpt(jti), error)
            await self._unaccept(key)
            return SetError.of(error)
        except Exception:
            log.exception(
                "ssf poll: accept failed for SET %s; it will be redelivered", excerpt(jti)
            )
            await self._unaccept(key)
            return "failed"
        self._unaccepted.pop(key, None)
        return "accepted"

    async def _unaccept(self, key: tuple[str, str]) -> None:
        self._unaccepted[key] = None
        while len(self._unaccepted) > _MAX_UNACCEPTED:
            del self._unaccepted[next(iter(self._unaccepted))]
        if isinstance(self.jti_store, ForgettingJtiStore):
            try:
                await self.jti_store.forget(*key)
            except Exception:
                log.exception("ssf poll: the jti store could not forget %s", excerpt(key[1]))


async def _until(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None if ``stop`` is set first (``work`` is then cancelled)."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    racing: set[asyncio.Future[Any]] = {task, waiter}
    try:
        done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task  # let it unwind; a failure while cancelled has no one left to report to
    return None
