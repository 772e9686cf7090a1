"""Stream management client (SSF 1.0 §8): create, read, update, replace and delete our stream,
read and set its status, add and remove subjects, and request a verification event.

:class:`StreamClient` calls the endpoints of a :class:`~ssf.discovery.TransmitterConfig`
through an injected ``httpx.AsyncClient``, with a bearer token. SSF 1.0 §8: "all Stream
Management API endpoints MUST use standard HTTP authentication and authorization schemes";
:data:`~ssf.remote.TokenSource` is a fixed token or an async callable that returns a fresh
one (an OAuth client-credentials token, §7.1.1).

What each call sends and expects (SSF 1.0 §8.1):

=======================  ==========================================  =======================
call                     request                                     success
=======================  ==========================================  =======================
create                   POST configuration_endpoint                 201 + configuration
                         {delivery, events_requested, description}   (§8.1.1.1)
get(stream_id)           GET configuration_endpoint?stream_id=       200 + configuration
get()                    GET configuration_endpoint                  200 + list (§8.1.1.2)
update                   PATCH {stream_id, changed members}          200 + configuration
replace                  PUT {stream_id, every Receiver-Supplied}    200 + configuration
delete                   DELETE configuration_endpoint?stream_id=    204 (§8.1.1.5)
get_status               GET status_endpoint?stream_id=              200 + status (§8.1.2.1)
update_status            POST status_endpoint {stream_id, status}    200 + status (§8.1.2.2)
add_subject              POST add_subject_endpoint                   200 (§8.1.3)
remove_subject           POST remove_subject_endpoint                204 (§8.1.3)
request_verification     POST verification_endpoint {stream_id,      204 (§8.1.4.2)
                         state}
=======================  ==========================================  =======================

200, 201 and 204 are all taken as success (transmitters differ on 200 vs 204). A 202 to a
call that must return a configuration or status — update / replace / update_status:
"accepted, but not processed. Receiver MAY try the same request later" — raises
:class:`~ssf.remote.StreamPending`; to delete, the subject calls and the verification request
it is success. Anything else raises :class:`~ssf.remote.StreamError` with the status and the
transmitter's body.

MUSTs this module enforces on the transmitter's answers:

- §8.1.1.1-§8.1.1.4: "The Receiver MUST check the response and confirm that the iss value
  matches the Issuer from which it received the Transmitter Configuration data" -> every
  configuration returned is checked; a mismatch raises :class:`~ssf.errors.InvalidIssuer`
  and the configuration is not returned. §8.1.1.1 (Validating a Create Stream Response):
  the Receiver "SHOULD ensure that [aud] matches what it expects" -> with ``audience``
  given, a configuration whose ``aud`` lacks it raises :class:`~ssf.errors.InvalidAudience`.
- §8.1.1.3: for PATCH "The stream_id property MUST be present in the request"; §8.1.1.4: for
  PUT "The stream_id and the full set of Receiver-Supplied properties MUST be present in the
  PUT body, not only those specifically intended to be changed. Missing Receiver-Supplied
  properties MUST be interpreted as requested to be deleted" -> :meth:`StreamClient.replace`
  always sends ``stream_id``, ``delivery``, ``events_requested`` and ``description`` from
  the configuration it is given (read it, ``model_copy(update=...)``, replace).
- §8.1.1.5: "The DELETE request MUST include the "stream_id" as a query parameter".
- §8.1.2.1: ``status`` "MUST be one of" ``enabled``, ``paused``, ``disabled``.

Verification (§8.1.4): :func:`verification_state` makes the opaque ``state``;
:func:`confirm_verification` checks that a received verification event carries it back —
§8.1.4.1: "the Event Receiver SHALL confirm that the value for "state" is as expected", and
the event's ``sub_id`` "MUST always be set to have a simple value of type opaque. The id of
the value MUST be the stream_id of the stream being verified". :func:`stream_updated` reads
a §8.1.5 ``stream-updated`` event into a :class:`StreamStatus`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal, overload

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from ssf.discovery import POLL_METHOD, PUSH_METHOD, TransmitterConfig
from ssf.errors import InvalidAudience, InvalidIssuer, InvalidRequest, excerpt
from ssf.events import EVENT_TYPES, SecurityEvent
from ssf.remote import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Reply,
    TokenSource,
    send,
)
from ssf.subject import OpaqueSubject, SubjectIdentifier, describe
from ssf.verify import VerifiedSet

#: The event types tokenwarden acts on and requests (``events_requested``): every SSF 1.0 /
#: CAEP 1.0 / RISC 1.0 event of the :mod:`ssf.events` catalogue, without the legacy and
#: deprecated URIs. SSF 1.0 §8.1.1: "A Receiver SHOULD request only the events that it
#: understands and it can act on."
SUPPORTED_EVENTS: Final[tuple[str, ...]] = tuple(
    entry.uri for entry in EVENT_TYPES.values() if not entry.legacy
)

StreamState = Literal["enabled", "paused", "disabled"]
_OK: Final = frozenset({200, 201, 204})
_OK_OR_ACCEPTED: Final = _OK | {202}
_STATE_BYTES: Final = 32


class PushDelivery(BaseModel):
    """SSF 1.0 §6.1.1: push delivery (RFC 8935) to our ``endpoint_url``.

    ``authorization_header``: "If present, the Transmitter MUST provide this value with every
    HTTP request to the endpoint_url" — a secret, so never shown in ``repr``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    method: Literal["urn:ietf:rfc:8935"] = PUSH_METHOD
    endpoint_url: str
    authorization_header: str | None = Field(default=None, repr=False)


class PollDelivery(BaseModel):
    """SSF 1.0 §6.1.2: poll delivery (RFC 8936); the transmitter supplies ``endpoint_url``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    method: Literal["urn:ietf:rfc:8936"] = POLL_METHOD
    endpoint_url: str | None = None


class OtherDelivery(BaseModel):
    """A delivery method this client does not know (kept as it came, members and all)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    method: str
    endpoint_url: str | None = None


def _delivery_tag(value: Any) -> str:
    method = value.get("method") if isinstance(value, dict) else getattr(value, "method", None)
    if method == PUSH_METHOD:
        return "push"
    if method == POLL_METHOD:
        return "poll"
    return "other"


Delivery = Annotated[
    Annotated[PushDelivery, Tag("push")]
    | Annotated[PollDelivery, Tag("poll")]
    | Annotated[OtherDelivery, Tag("other")],
    Discriminator(_delivery_tag),
]


class StreamConfiguration(BaseModel):
    """SSF 1.0 §8.1.1: an event stream's configuration, as the transmitter returns it.

    ``aud`` is kept as a tuple (the wire allows a string or an array). Unknown members are
    kept (``model_extra``): "Receivers MUST ignore any fields they do not understand".
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    stream_id: str = Field(min_length=1)
    iss: str
    aud: tuple[str, ...] = ()
    delivery: Delivery
    events_supported: tuple[str, ...] | None = None
    events_requested: tuple[str, ...] | None = None
    events_delivered: tuple[str, ...] = ()
    min_verification_interval: int | None = None
    description: str | None = None
    inactivity_timeout: int | None = None

    @field_validator("aud", mode="before")
    @classmethod
    def _audience(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def receiver_supplied(self) -> dict[str, Any]:
        """``stream_id`` and the Receiver-Supplied members, as a PUT body (§8.1.1.4)."""
        body: dict[str, Any] = {
            "stream_id": self.stream_id,
            "delivery": self.delivery.model_dump(mode="json", exclude_none=True),
        }
        if self.events_requested is not None:
            body["events_requested"] = list(self.events_requested)
        if self.description is not None:
            body["description"] = self.description
        return body


class StreamStatus(BaseModel):
    """SSF 1.0 §8.1.2: a stream's status and the optional reason."""

    model_config = ConfigDict(frozen=True, extra="allow")

    stream_id: str
    status: StreamState
    reason: str | None = None


_CONFIGS: Final = TypeAdapter(list[StreamConfiguration])


def _wire(value: Any) -> Any:
    """A request member as JSON: models dumped, tuples and sets as lists."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, tuple | list | set | frozenset):
        return [_wire(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    return value


def _subject_wire(subject: SubjectIdentifier | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(subject, SubjectIdentifier):
        return subject.to_wire()
    return dict(subject)


class StreamClient:
    """The SSF 1.0 §8 management API of one transmitter, for one receiver.

    ``token`` authenticates every call (``Authorization: Bearer``); ``audience``, when
    given, must be in the ``aud`` of every configuration the transmitter returns.
    """

    def __init__(
        self,
        config: TransmitterConfig,
        *,
        client: httpx.AsyncClient,
        token: TokenSource,
        audience: str | None = None,
        timeout: float = 10.0,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.config = config
        self.audience = audience
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = client
        self._token = token

    # -- configuration (§8.1.1) ------------------------------------------------------------

    async def create(
        self,
        delivery: PushDelivery | PollDelivery | OtherDelivery,
        events_requested: Iterable[str],
        description: str | None = None,
    ) -> StreamConfiguration:
        """Create a stream (§8.1.1.1). 409 (one stream per receiver) raises StreamError."""
        body: dict[str, Any] = {
            "delivery": _wire(delivery),
            "events_requested": list(events_requested),
        }
        if description is not None:
            body["description"] = description
        reply = await self._send("POST", self._endpoint("configuration_endpoint"), body=body)
        return self._configuration(reply)

    @overload
    async def get(self, stream_id: str) -> StreamConfiguration: ...

    @overload
    async def get(self, stream_id: None = None) -> tuple[StreamConfiguration, ...]: ...

    async def get(
        self, stream_id: str | None = None
    ) -> StreamConfiguration | tuple[StreamConfiguration, ...]:
        """One stream's configuration, or (no ``stream_id``) all of this receiver's (§8.1.1.2).

        "If the "stream_id" parameter is missing, then the Transmitter MUST return a list of
        the stream configurations available to this Receiver"; a transmitter answering a
        single object instead (older drafts) gets a one-element tuple.
        """
        url = self._endpoint("configuration_endpoint")
        if stream_id is not None:
            reply = await self._send("GET", url, params={"stream_id": stream_id})
            return self._configuration(reply)
        reply = await self._send("GET", url)
        value = reply.json("the stream configurations")
        if isinstance(value, dict):
            value = [value]
        try:
            configs = _CONFIGS.validate_python(value)
        except ValidationError as error:
            raise InvalidRequest(describe(error, "stream configurations")) from None
        return tuple(self._checked(config) for config in configs)

    async def update(self, stream_id: str, **changes: Any) -> StreamConfiguration:
        """Change some Receiver-Supplied members (PATCH, §8.1.1.3); the rest stay as they are.

        ``changes`` are members of the stream configuration (``description=...``,
        ``events_requested=[...]``, ``delivery=PushDelivery(...)``).
        """
        if not changes:
            raise ValueError("update() needs at least one member to change")
        body = {"stream_id": stream_id, **{k: _wire(v) for k, v in changes.items()}}
        reply = await self._send("PATCH", self._endpoint("configuration_endpoint"), body=body)
        return self._configuration(reply)

    async def replace(self, config: StreamConfiguration) -> StreamConfiguration:
        """Replace the stream's Receiver-Supplied members with ``config``'s (PUT, §8.1.1.4).

        A Receiver-Supplied member that ``config`` lacks is deleted by the transmitter.
        """
        reply = await self._send(
            "PUT", self._endpoint("configuration_endpoint"), body=config.receiver_supplied()
        )
        return self._configuration(reply)

    async def delete(self, stream_id: str) -> None:
        """Delete the stream (§8.1.1.5)."""
        await self._send(
            "DELETE",
            self._endpoint("configuration_endpoint"),
            params={"stream_id": stream_id},
            accepted_is_done=True,
        )

    # -- status (§8.1.2) -------------------------------------------------------------------

    async def get_status(self, stream_id: str) -> StreamStatus:
        """The stream's status (§8.1.2.1)."""
        reply = await self._send(
            "GET", self._endpoint("status_endpoint"), params={"stream_id": stream_id}
        )
        return self._status(reply, stream_id)

    async def update_status(
        self, stream_id: str, status: StreamState, reason: str | None = None
    ) -> StreamStatus:
        """Set the stream's status (§8.1.2.2); returns the status the transmitter reports."""
        if status not in ("enabled", "paused", "disabled"):
            raise ValueError(f"status must be enabled, paused or disabled, not {status!r}")
        body: dict[str, Any] = {"stream_id": stream_id, "status": status}
        if reason is not None:
            body["reason"] = reason
        reply = await self._send("POST", self._endpoint("status_endpoint"), body=body)
        if not reply.body.strip():
            return StreamStatus(stream_id=stream_id, status=status, reason=reason)
        return self._status(reply, stream_id)

    # -- subjects (§8.1.3) -----------------------------------------------------------------

    async def add_subject(
        self,
        stream_id: str,
        subject: SubjectIdentifier | Mapping[str, Any],
        verified: bool | None = None,
    ) -> None:
        """Ask for events about ``subject`` (§8.1.3). Success promises no event about it
        (SSF 1.0 Security Considerations, "Subject Probing")."""
        body: dict[str, Any] = {"stream_id": stream_id, "subject": _subject_wire(subject)}
        if verified is not None:
            body["verified"] = verified
        await self._send(
            "POST", self._endpoint("add_subject_endpoint"), body=body, accepted_is_done=True
        )

    async def remove_subject(
        self, stream_id: str, subject: SubjectIdentifier | Mapping[str, Any]
    ) -> None:
        """Stop asking for events about ``subject`` (§8.1.3). Events about it may still come
        for a while: receivers "MUST tolerate receiving events for subjects that have been
        removed from the stream" (SSF 1.0 Security Considerations, "Malicious Subject
        Removal")."""
        body = {"stream_id": stream_id, "subject": _subject_wire(subject)}
        await self._send(
            "POST", self._endpoint("remove_subject_endpoint"), body=body, accepted_is_done=True
        )

    # -- verification (§8.1.4) -------------------------------------------------------------

    async def request_verification(self, stream_id: str, state: str | None = None) -> None:
        """Ask for a verification event carrying ``state`` (§8.1.4.2). It arrives later, over
        the stream: "Event Receivers MUST NOT depend on the Verification Event being
        transmitted synchronously"."""
        body: dict[str, Any] = {"stream_id": stream_id}
        if state is not None:
            body["state"] = state
        await self._send(
            "POST", self._endpoint("verification_endpoint"), body=body, accepted_is_done=True
        )

    # -- plumbing --------------------------------------------------------------------------

    def _endpoint(self, name: str) -> str:
        url: str | None = getattr(self.config, name)
        if url is None:
            raise ValueError(
                f"transmitter {self.config.issuer!r} publishes no {name} (SSF 1.0 §7.1)"
            )
        return url

    async def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        accepted_is_done: bool = False,
    ) -> Reply:
        """``accepted_is_done``: a 202 is success (no answer body is needed); otherwise a 202
        raises StreamPending."""
        return await send(
            self._client,
            method,
            url,
            expect=_OK_OR_ACCEPTED if accepted_is_done else _OK,
            token=self._token,
            body=body,
            params=params,
            timeout=self.timeout,
            max_bytes=self.max_bytes,
        )

    def _configuration(self, reply: Reply) -> StreamConfiguration:
        document = reply.json_object("the stream configuration")
        try:
            config = StreamConfiguration.model_validate(document)
        except ValidationError as error:
            raise InvalidRequest(describe(error, "stream configuration")) from None
        return self._checked(config)

    def _checked(self, config: StreamConfiguration) -> StreamConfiguration:
        if config.iss != self.config.issuer:
            raise InvalidIssuer(
                f"stream {excerpt(config.stream_id)} has iss {excerpt(config.iss)}, not the "
                f"discovered issuer {excerpt(self.config.issuer)} (SSF 1.0 §8.1.1)"
            )
        if self.audience is not None and self.audience not in config.aud:
            raise InvalidAudience(
                f"stream {excerpt(config.stream_id)} has aud {excerpt(list(config.aud))}, "
                "without this receiver's audience"
            )
        return config

    def _status(self, reply: Reply, stream_id: str) -> StreamStatus:
        document = reply.json_object("the stream status")
        document.setdefault("stream_id", stream_id)
        try:
            status = StreamStatus.model_validate(document)
        except ValidationError as error:
            raise InvalidRequest(describe(error, "stream status")) from None
        if status.stream_id != stream_id:
            raise InvalidRequest(
                f"asked for the status of {excerpt(stream_id)}, got {excerpt(status.stream_id)}"
            )
        return status


def verification_state() -> str:
    """A fresh, unguessable ``state`` for a verification request (256 random bits)."""
    return secrets.token_urlsafe(_STATE_BYTES)


def _stream_event(verified_set: VerifiedSet, name: str) -> SecurityEvent | None:
    for event in verified_set.events:
        if event.event_name == name:
            return event
    return None


def _stream_of(event: SecurityEvent) -> str | None:
    subject = event.subject
    return subject.id if isinstance(subject, OpaqueSubject) else None


def confirm_verification(
    expected_state: str, verified_set: VerifiedSet, *, stream_id: str | None = None
) -> bool:
    """Whether ``verified_set`` is the verification event that answers our request.

    True when it holds a verification event (SSF 1.0 §8.1.4.1, or a legacy URI) whose
    ``state`` equals ``expected_state`` (compared in constant time) and, if ``stream_id`` is
    given, whose subject is the ``opaque`` subject naming that stream. A mismatch is what
    §8.1.4.1 calls ``invalid_state``.
    """
    event = _stream_event(verified_set, "verification")
    if event is None:
        return False
    state = event.claims.get("state")
    if not isinstance(state, str) or not hmac.compare_digest(
        state.encode("utf-8"), expected_state.encode("utf-8")
    ):
        return False
    return stream_id is None or _stream_of(event) == stream_id


def stream_updated(verified_set: VerifiedSet) -> StreamStatus | None:
    """The new status a ``stream-updated`` event (SSF 1.0 §8.1.5) announces, or None.

    §8.1.5: ``status`` is REQUIRED; ``sub_id`` "MUST be of format opaque, and its id value
    MUST be the unique ID of the stream". Raises :class:`~ssf.errors.InvalidRequest` when
    the event breaks either rule.
    """
    event = _stream_event(verified_set, "stream_updated")
    if event is None:
        return None
    stream_id = _stream_of(event)
    if stream_id is None:
        raise InvalidRequest("a stream-updated event's subject must be opaque (SSF 1.0 §8.1.5)")
    try:
        return StreamStatus.model_validate(
            {
                "stream_id": stream_id,
                "status": event.claims.get("status"),
                "reason": event.claims.get("reason"),
            }
        )
    except ValidationError as error:
        raise InvalidRequest(describe(error, "stream-updated event")) from None
