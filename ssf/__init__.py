"""Shared Signals Framework 1.0, CAEP 1.0 and RISC 1.0 (RFC 8417, 8935, 8936, 9493).

The bottom layer: imports nothing of ours. Here: the SET verifier (typ, algorithm
allow-list, key by ``kid`` from a cached and rate-limited JWKS, issuer, audience, ``iat``,
strict SSF profile), subjects (RFC 9493 and SSF complex subjects, legacy shapes),
security events and their catalogue, ``jti`` replay, and the RFC 8935 error codes. The push
endpoint logic, poll client and stream-management client build on these (see the SSF
receiver issue).
"""

from ssf.errors import (
    ERROR_CODES,
    AccessDenied,
    AuthenticationFailed,
    ErrorCode,
    InvalidAudience,
    InvalidIssuer,
    InvalidKey,
    InvalidRequest,
    SsfError,
)
from ssf.events import (
    EVENT_TYPES,
    EVENT_URIS,
    EventType,
    SecurityEvent,
    event_name,
    events_of,
)
from ssf.jwks import JsonWebKey, JwksCache, parse_jwk, parse_jwks
from ssf.jws import SUPPORTED_ALGORITHMS, PublicKey
from ssf.replay import JtiStore, MemoryJtiStore
from ssf.subject import (
    COMPLEX_MEMBERS,
    AccountSubject,
    AliasesSubject,
    ComplexSubject,
    DidSubject,
    EmailSubject,
    IpAddressesSubject,
    IssSubSubject,
    JwtIdSubject,
    OpaqueSubject,
    PhoneNumberSubject,
    ProprietarySubject,
    SamlAssertionIdSubject,
    SimpleSubject,
    Subject,
    SubjectIdentifier,
    UriSubject,
    parse_subject,
)
from ssf.verify import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_BYTES,
    SetVerifier,
    Transmitter,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)

__all__ = [
    "COMPLEX_MEMBERS",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MAX_BYTES",
    "ERROR_CODES",
    "EVENT_TYPES",
    "EVENT_URIS",
    "SUPPORTED_ALGORITHMS",
    "AccessDenied",
    "AccountSubject",
    "AliasesSubject",
    "AuthenticationFailed",
    "ComplexSubject",
    "DidSubject",
    "EmailSubject",
    "ErrorCode",
    "EventType",
    "InvalidAudience",
    "InvalidIssuer",
    "InvalidKey",
    "InvalidRequest",
    "IpAddressesSubject",
    "IssSubSubject",
    "JsonWebKey",
    "JtiStore",
    "JwksCache",
    "JwtIdSubject",
    "MemoryJtiStore",
    "OpaqueSubject",
    "PhoneNumberSubject",
    "ProprietarySubject",
    "PublicKey",
    "SamlAssertionIdSubject",
    "SecurityEvent",
    "SetVerifier",
    "SimpleSubject",
    "SsfError",
    "Subject",
    "SubjectIdentifier",
    "Transmitter",
    "TransmitterPolicy",
    "TransmitterRegistry",
    "UriSubject",
    "VerifiedSet",
    "event_name",
    "events_of",
    "parse_jwk",
    "parse_jwks",
    "parse_subject",
]
