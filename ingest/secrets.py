"""Raw tokens never get past the edge: keyed hashing and secret redaction.

DESIGN.md: ``token.id``/``parent_id`` are identifiers (a jti, or a hash), never raw tokens.
A raw token that arrives anyway is replaced at the edge by its keyed hash, HMAC-SHA256
(RFC 2104) under the instance's hash key, so the same token always maps to the same id and
nobody without the key can test a guess against the store.

What counts as a raw token (documented in the README):

* a JWS/JWE compact serialization (RFC 7515 §7.1, RFC 7516 §7.1): three or five
  base64url segments separated by dots, starting with ``eyJ`` (a base64url JSON header);
* anything carrying an HTTP auth scheme (``Bearer …``, ``Basic …``, ``DPoP …``; RFC 6750 §2.1);
* a well-known secret-token prefix (GitHub ``ghp_``/``gho_``/``ghr_``/``ghs_``/``ghu_``,
  Slack ``xox?-``, Google ``ya29.``/``1//``, OpenAI-style ``sk-``);
* any value longer than 128 characters (identifiers are short; opaque tokens are long).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

HASH_PREFIX = "h1:"
MAX_IDENTIFIER_LENGTH = 128

_B64 = r"[A-Za-z0-9_-]"
JWT_RE = re.compile(rf"eyJ{_B64}+\.{_B64}*\.{_B64}*(?:\.{_B64}*\.{_B64}*)?")
_AUTH_SCHEME_RE = re.compile(r"(?i)\b(bearer|basic|dpop)\s+[A-Za-z0-9._~+/=-]{8,}")
_PREFIXES = ("ghp_", "gho_", "ghr_", "ghs_", "ghu_", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "ya29.")
_PREFIX_RE = re.compile(
    r"\b(?:gh[porsu]_[A-Za-z0-9]{16,}|xox[abpr]-[A-Za-z0-9-]{8,}|ya29\.[A-Za-z0-9._-]{8,}"
    r"|1//[A-Za-z0-9._-]{16,}|sk-[A-Za-z0-9_-]{16,})"
)
REDACTED = "[REDACTED]"
#: The shortest value any rule below can match ("Bearer " and 8 characters).
_MIN_SECRET_LENGTH = 15


def looks_like_raw_token(value: str) -> bool:
    """True when ``value`` looks like a credential rather than an identifier."""
    if len(value) < _MIN_SECRET_LENGTH:
        return False  # shorter than any shape below: most values, decided at once
    if value.startswith(HASH_PREFIX):
        return False
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return True
    if JWT_RE.fullmatch(value):
        return True
    if _AUTH_SCHEME_RE.match(value):
        return True
    return value.startswith((*_PREFIXES, "1//", "sk-")) and len(value) >= 20


class TokenHasher:
    """Keyed hash of token values: HMAC-SHA256 (RFC 2104) truncated to 128 bits, hex."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the token hash key must be at least 16 bytes")
        self._key = key

    def hash(self, raw: str) -> str:
        """The keyed hash of a raw token value, as an identifier ``h1:<32 hex>``."""
        raw = _strip_scheme(raw)
        digest = hmac.new(self._key, raw.encode("utf-8"), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest[:32]

    def identifier(self, value: str) -> str:
        """``value`` itself when it is an identifier, its keyed hash when it is a raw token."""
        return self.hash(value) if looks_like_raw_token(value) else value

    def subkey(self, purpose: str) -> bytes:
        """A 64-byte key for another purpose, derived from the hash key: HMAC-SHA512
        (RFC 2104, RFC 6234) of ``purpose``. A different function from the token hash
        (HMAC-SHA256), so no token hash, whatever the token, is or reveals a subkey."""
        return hmac.new(self._key, purpose.encode("utf-8"), hashlib.sha512).digest()


def _strip_scheme(raw: str) -> str:
    raw = raw.strip()
    head, _, rest = raw.partition(" ")
    if rest and head.lower() in {"bearer", "basic", "dpop"}:
        return rest.strip()
    return raw


def redact_text(text: str) -> str:
    """Replace every JWT, auth-scheme credential and known secret token in ``text``."""
    text = JWT_RE.sub(REDACTED, text)
    text = _AUTH_SCHEME_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _PREFIX_RE.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """Redact secrets from strings inside any JSON-like structure."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
