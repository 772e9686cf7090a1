from __future__ import annotations

import pytest

from ingest import TokenHasher, looks_like_raw_token, redact, redact_text

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.MEUCIQDsig"


@pytest.mark.parametrize(
    "value",
    [
        JWT,
        "Bearer abcdefghijklmnopqrstu",
        "ghp_" + "a" * 36,
        "ya29.a0AfH6SMB" + "x" * 20,
        "x" * 200,
    ],
)
def test_raw_tokens_are_recognised(value: str) -> None:
    assert looks_like_raw_token(value)


@pytest.mark.parametrize(
    "value", ["fam-1", "0b8a2c7e-4c1d-4a8e-9d69-3c3f2b1a0e11", "h1:" + "a" * 200, "rt-42"]
)
def test_identifiers_are_left_alone(value: str) -> None:
    assert not looks_like_raw_token(value)


def test_redaction_removes_jwts_and_bearer_secrets() -> None:
    text = f"auth header was Bearer sekrit-value-123 and token {JWT} for jane"
    out = redact_text(text)
    assert JWT not in out and "sekrit-value-123" not in out
    assert "jane" in out and "[REDACTED]" in out
    assert redact({"a": [text], "n": 3}) == {"a": [out], "n": 3}


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TokenHasher(b"short")
