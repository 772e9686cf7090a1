"""Errors of the SSF receiver: one machine code outward, the details in the description.

Every refusal of a SET maps 1:1 onto the RFC 8935 failure response. RFC 8935 §2.3: "When
the SET Recipient detects an error parsing, validating, or authenticating a SET transmitted
in a SET Transmission Request, the SET Recipient SHALL respond with an HTTP Response Status
Code of 400 (Bad Request)", with a JSON body of ``err`` (a Security Event Token Error Code)
and ``description`` ("a human-readable description of the error that may provide additional
diagnostic information"). The codes are exactly those of the IANA "Security Event Token
Error Codes" registry (RFC 8935 §2.4, registered in §7.1); the push endpoint answers
``authentication_failed`` with 401 and ``access_denied`` with 403:

=======================  ======================================================  ======
``err``                  RFC 8935 §2.4                                           status
=======================  ======================================================  ======
invalid_request          "The request body cannot be parsed as a SET, or the     400
                         Event Payload within the SET does not conform to the
                         event's definition."
invalid_key              "One or more keys used to encrypt or sign the SET is    400
                         invalid or otherwise unacceptable to the SET
                         Recipient"
invalid_issuer           "The SET Issuer is invalid for the SET Recipient."      400
invalid_audience         "The SET Audience does not correspond to the SET        400
                         Recipient."
authentication_failed    "The SET Recipient could not authenticate the SET       401
                         Transmitter."
access_denied            "The SET Transmitter is not authorized to transmit      403
                         the SET to the SET Recipient."
=======================  ======================================================  ======

Exception tree::

    Exception
    └── SsfError              err + description + status; to_body() -> RFC 8935 body
        ├── InvalidRequest    invalid_request        not a JWS, bad JSON, bad claims  400
        ├── InvalidKey        invalid_key            bad signature, unknown kid,      400
        │                                            alg not allowed, unusable JWKS
        ├── InvalidIssuer     invalid_issuer         iss not a configured transmitter 400
        ├── InvalidAudience   invalid_audience       aud lacks our audience           400
        ├── AuthenticationFailed
        │                     authentication_failed  missing/wrong Authorization      401
        └── AccessDenied      access_denied          stream for that issuer disabled  403

Descriptions say what was wrong (``"alg 'HS256' is not allowed for this transmitter"``) and
never carry key material, the token, or more than a short, ``repr``-quoted excerpt of an
attacker-controlled value (see :func:`excerpt`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal, get_args

ErrorCode = Literal[
    "invalid_request",
    "invalid_key",
    "invalid_issuer",
    "invalid_audience",
    "authentication_failed",
    "access_denied",
]

#: The six RFC 8935 §2.4 error codes, and nothing else.
ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(ErrorCode))

_STATUS: Final[dict[str, int]] = {"authentication_failed": 401, "access_denied": 403}
_EXCERPT = 64


def excerpt(value: object, limit: int = _EXCERPT) -> str:
    """A short ``repr`` of an untrusted value, safe to put in a description or a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SsfError(Exception):
    """A refused SET (or request): an RFC 8935 error code and a human description.

    ``SsfError("invalid_key", "signature does not verify")`` and
    ``InvalidKey("signature does not verify")`` are equivalent; :meth:`of` builds the
    subclass that matches a code.
    """

    err: ErrorCode
    description: str

    def __init__(self, err: ErrorCode, description: str) -> None:
        if err not in ERROR_CODES:
            raise ValueError(f"not an RFC 8935 error code: {err!r}")
        super().__init__(f"{err}: {description}")
        self.err = err
        self.description = description

    def __reduce__(self) -> tuple[Callable[[ErrorCode, str], SsfError], tuple[ErrorCode, str]]:
        return (SsfError.of, (self.err, self.description))

    @property
    def status(self) -> int:
        """HTTP status: 400, except 401 for authentication_failed and 403 for access_denied."""
        return _STATUS.get(self.err, 400)

    def to_body(self) -> dict[str, str]:
        """The RFC 8935 §2.3 failure response body: ``{"err": ..., "description": ...}``."""
        return {"err": self.err, "description": self.description}

    @staticmethod
    def of(err: ErrorCode, description: str) -> SsfError:
        """The :class:`SsfError` subclass for ``err``."""
        return _BY_CODE[err](description)


class InvalidRequest(SsfError):
    """``invalid_request``: not a JWS, malformed JSON, missing or malformed claims."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_request", description)


class InvalidKey(SsfError):
    """``invalid_key``: signature fails, no usable key for ``kid``, algorithm not allowed."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_key", description)


class InvalidIssuer(SsfError):
    """``invalid_issuer``: ``iss`` is not a configured transmitter."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_issuer", description)


class InvalidAudience(SsfError):
    """``invalid_audience``: ``aud`` does not contain the audience configured for the issuer."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_audience", description)


class AuthenticationFailed(SsfError):
    """``authentication_failed`` (401): missing or wrong transmitter credentials."""

    def __init__(self, description: str) -> None:
        super().__init__("authentication_failed", description)


class AccessDenied(SsfError):
    """``access_denied`` (403): the transmitter may not deliver here (e.g. stream disabled)."""

    def __init__(self, description: str) -> None:
        super().__init__("access_denied", description)


_BY_CODE: Final[dict[str, Callable[[str], SsfError]]] = {
    "invalid_request": InvalidRequest,
    "invalid_key": InvalidKey,
    "invalid_issuer": InvalidIssuer,
    "invalid_audience": InvalidAudience,
    "authentication_failed": AuthenticationFailed,
    "access_denied": AccessDenied,
}
