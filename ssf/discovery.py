"""Transmitter discovery: fetch and check a transmitter's configuration metadata (SSF 1.0 §7).

:func:`discover` takes the issuer of a transmitter and returns its
:class:`TransmitterConfig` — the JWKS location, delivery methods and the stream management
endpoints the :class:`~ssf.stream.StreamClient` calls.

Where the document lives, SSF 1.0 §7.2: "Transmitters supporting Discovery MUST make a JSON
document available at the path formed by inserting the string
"/.well-known/ssf-configuration" into the Issuer between the host component and the path
component, if any" (the RFC 8414 §3.1 form), and §7.2.1: "If the Issuer value contains a path
component, any terminating "/" MUST be removed before inserting
"/.well-known/ssf-configuration" between the host component and the path component". So::

    https://tr.example.com           -> https://tr.example.com/.well-known/ssf-configuration
    https://tr.example.com/issuer1/  -> https://tr.example.com/.well-known/ssf-configuration/issuer1

§7.2.1: the document "MUST be queried using an HTTP "GET" request". Older transmitters publish
it elsewhere: §7.2.2, "Existing RISC Transmitters MAY continue to use the path component
"/risc-configuration" instead of the path component "/ssf-configuration"", and the pre-1.0
SSE drafts used "/sse-configuration". When the SSF location answers 404, :func:`discover`
tries ``sse-configuration`` and then ``risc-configuration`` (same path insertion); any other
failure stops it (a 500 is not "not here").

Checks on the document (each refusal raises, nothing half-checked is returned):

- §7.2.3: "A successful response MUST use the 200 OK HTTP status code and return a JSON
  object" -> otherwise :class:`~ssf.remote.StreamError` (status) or
  :class:`~ssf.errors.InvalidRequest` (not a JSON object, a member of the wrong type). The
  ``Content-Type`` is not checked: a JSON object served as ``text/plain`` is still one.
- §7.2.4: "The "issuer" value returned MUST be identical to the Issuer URL that was directly
  used to retrieve the configuration information" and "If any of the validation procedures
  defined in this specification fail, any operations requiring the information that failed
  to correctly validate MUST be aborted and the information that failed to validate MUST NOT
  be used." -> a different ``issuer`` (compared as exact strings) raises
  :class:`~ssf.errors.InvalidIssuer`; this is what stops a document on one host from
  claiming another transmitter's identity and keys.
- §7.1: ``jwks_uri`` and every endpoint, "If present, this URL MUST use HTTP over TLS" ->
  :class:`~ssf.errors.InvalidRequest` for a plain ``http`` URL, unless it is a loopback
  address or the caller passed ``allow_http``. §7.2: "Receivers SHOULD ensure that the Issuer
  URL comes from a trusted source and uses the https scheme" — the issuer argument gets the
  same rule, as a ``ValueError`` (it is the caller's input, not the transmitter's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ssf.errors import InvalidIssuer, InvalidRequest, excerpt
from ssf.remote import DEFAULT_MAX_RESPONSE_BYTES, StreamError, insecure, send
from ssf.subject import describe

#: SSF 1.0 §6.1.1: the push delivery method (RFC 8935).
PUSH_METHOD: Final = "urn:ietf:rfc:8935"
#: SSF 1.0 §6.1.2: the poll delivery method (RFC 8936).
POLL_METHOD: Final = "urn:ietf:rfc:8936"

#: The well-known names tried, in order: SSF 1.0, then the legacy SSE and RISC ones.
WELL_KNOWN_NAMES: Final[tuple[str, ...]] = (
    "ssf-configuration",
    "sse-configuration",
    "risc-configuration",
)

_ENDPOINTS: Final[tuple[str, ...]] = (
    "jwks_uri",
    "configuration_endpoint",
    "status_endpoint",
    "add_subject_endpoint",
    "remove_subject_endpoint",
    "verification_endpoint",
)


class AuthorizationScheme(BaseModel):
    """SSF 1.0 §7.1.1: one supported authorization scheme (``spec_urn`` REQUIRED)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    spec_urn: str


class TransmitterConfig(BaseModel):
    """A transmitter's configuration metadata (SSF 1.0 §7.1), checked by :func:`discover`.

    ``raw`` is the document exactly as received (other claims "MAY also be returned",
    §7.2.3); ``source`` is the URL it came from (telling which well-known name answered).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    issuer: str
    jwks_uri: str | None = None
    delivery_methods_supported: tuple[str, ...] = ()
    configuration_endpoint: str | None = None
    status_endpoint: str | None = None
    add_subject_endpoint: str | None = None
    remove_subject_endpoint: str | None = None
    verification_endpoint: str | None = None
    authorization_schemes: tuple[AuthorizationScheme, ...] = ()
    default_subjects: str | None = None
    spec_version: str | None = None
    critical_subject_members: tuple[str, ...] = ()
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False)
    source: str | None = None

    def supports(self, method: str) -> bool:
        """Whether ``method`` (e.g. :data:`POLL_METHOD`) is in ``delivery_methods_supported``.

        The member is only RECOMMENDED (§7.1): a transmitter that omits it is assumed to
        support anything, and the stream creation answer decides.
        """
        return not self.delivery_methods_supported or method in self.delivery_methods_supported

    @classmethod
    def from_document(
        cls,
        document: Mapping[str, Any],
        *,
        issuer: str,
        source: str | None = None,
        allow_http: bool = False,
    ) -> TransmitterConfig:
        """Check a configuration document fetched for ``issuer`` (rules in the module doc)."""
        where = f"transmitter configuration{f' at {source}' if source else ''}"
        members = {k: v for k, v in document.items() if k not in ("raw", "source")}
        try:
            config = cls.model_validate(members)
        except ValidationError as error:
            raise InvalidRequest(describe(error, where)) from None
        if config.issuer != issuer:
            raise InvalidIssuer(
                f"{where} names issuer {excerpt(config.issuer)}, not the requested "
                f"{excerpt(issuer)} (SSF 1.0 §7.2.4)"
            )
        for name in _ENDPOINTS:
            url = getattr(config, name)
            if url is not None:
                why = insecure(url, allow_http=allow_http)
                if why is not None:
                    raise InvalidRequest(f"{where}: {name} {why} (SSF 1.0 §7.1)")
        return config.model_copy(update={"raw": dict(document), "source": source})


def well_known_url(issuer: str, name: str = WELL_KNOWN_NAMES[0]) -> str:
    """The metadata URL of ``issuer``: ``/.well-known/<name>`` inserted before its path.

    SSF 1.0 §7.2.1 (RFC 8414 §3.1): a terminating ``/`` of the path is removed first.
    Raises ``ValueError`` for an issuer with a query or fragment (§7.1: the issuer is a URL
    "with no query or fragment component") or without a host.
    """
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise ValueError(f"an issuer has no query or fragment (SSF 1.0 §7.1): {issuer!r}")
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"an issuer is an absolute URL with a host: {issuer!r}")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}{path}", "", ""))


async def discover(
    issuer: str,
    *,
    client: httpx.AsyncClient,
    legacy: bool = True,
    allow_http: bool = False,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> TransmitterConfig:
    """Fetch and check the configuration of the transmitter ``issuer`` (SSF 1.0 §7.2).

    Tries ``/.well-known/ssf-configuration`` and, when ``legacy`` and it answers 404, the
    ``sse-configuration`` and ``risc-configuration`` locations. Raises ``ValueError`` for an
    unusable issuer, :class:`~ssf.remote.StreamError` when no location answers 200,
    :class:`~ssf.errors.InvalidIssuer` when the document names another issuer and
    :class:`~ssf.errors.InvalidRequest` when it is malformed or names a non-https endpoint.
    """
    why = insecure(issuer, allow_http=allow_http)
    if why is not None:
        raise ValueError(f"issuer {why} (SSF 1.0 §7.2)")
    names = WELL_KNOWN_NAMES if legacy else WELL_KNOWN_NAMES[:1]
    tried: list[str] = []
    last: StreamError | None = None
    for name in names:
        url = well_known_url(issuer, name)
        tried.append(url)
        try:
            reply = await send(
                client, "GET", url, expect={200}, timeout=timeout, max_bytes=max_bytes
            )
        except StreamError as error:
            if error.status != 404:
                raise
            last = error
            continue
        document = reply.json_object("the transmitter configuration")
        return TransmitterConfig.from_document(
            document, issuer=issuer, source=url, allow_http=allow_http
        )
    assert last is not None
    raise StreamError(
        "GET",
        tried[0],
        404,
        last.body,
        reason="no transmitter configuration at " + ", ".join(tried),
    )
