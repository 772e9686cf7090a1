"""JwksCache: JWK parsing, and rotation against a real JWKS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from ssf import (
    JwksCache,
    SetVerifier,
    SsfError,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
    parse_jwk,
    parse_jwks,
)
from tests.ssf.conftest import JwksServer
from tests.ssf.helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    Signer,
    b64,
    claims,
    ec_signer,
    jwks_of,
    rsa_signer,
)


def _verifier(client: httpx.AsyncClient, url: str, **cache_args: Any) -> SetVerifier:
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE),
        JwksCache(jwks_uri=url, client=client, **cache_args),
    )
    return SetVerifier(registry)


async def _outcome(verifier: SetVerifier, token: str, now: datetime) -> VerifiedSet | SsfError:
    try:
        return await verifier.verify(token, now=now)
    except SsfError as error:
        return error


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


def test_first_use_fetches_then_caches(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(jwks_of(rsa_key))

    async def main() -> None:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url)
            for i in range(5):
                token = rsa_key.sign(claims(jti=f"j{i}"))
                assert (await verifier.verify(token, now=NOW)).jti == f"j{i}"

    asyncio.run(main())
    assert jwks_server.hits == 1


def test_rotation_new_kid_appears_after_refresh(jwks_server: JwksServer) -> None:
    """A kid the transmitter publishes later is accepted once the cache may refetch."""
    old, new = rsa_signer("2026-01"), ec_signer("2026-02")
    jwks_server.serve(jwks_of(old))

    async def main() -> None:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url)
            assert isinstance(await _outcome(verifier, old.sign(claims()), NOW), VerifiedSet)
            assert jwks_server.hits == 1

            jwks_server.serve(jwks_of(old, new))  # the transmitter rotates
            # Within the rate-limit window: no refetch, refused.
            early = await _outcome(verifier, new.sign(claims()), NOW + timedelta(seconds=10))
            assert isinstance(early, SsfError) and early.err == "invalid_key"
            assert "refetch at most every 60 s" in early.description
            assert jwks_server.hits == 1

            # After the window: one refetch, accepted; the old key still works.
            later = NOW + timedelta(seconds=61)
            assert isinstance(await _outcome(verifier, new.sign(claims()), later), VerifiedSet)
            assert isinstance(await _outcome(verifier, old.sign(claims()), later), VerifiedSet)
            assert jwks_server.hits == 2

            # The transmitter withdraws the old key: gone after the next refetch.
            jwks_server.serve(jwks_of(new))
            ghost = rsa_signer("2026-03")
            much_later = NOW + timedelta(seconds=200)
            miss = await _outcome(verifier, ghost.sign(claims()), much_later)
            assert isinstance(miss, SsfError) and miss.err == "invalid_key"
            assert jwks_server.hits == 3
            withdrawn = await _outcome(verifier, old.sign(claims()), much_later)
            assert isinstance(withdrawn, SsfError) and withdrawn.err == "invalid_key"

    asyncio.run(main())


def test_kid_that_never_appears_is_refused_and_refetch_is_rate_limited(
    jwks_server: JwksServer, rsa_key: Signer
) -> None:
    jwks_server.serve(jwks_of(rsa_key))

    async def main() -> None:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url)
            assert isinstance(await _outcome(verifier, rsa_key.sign(claims()), NOW), VerifiedSet)
            assert jwks_server.hits == 1

            t1 = NOW + timedelta(seconds=120)
            first = await _outcome(verifier, rsa_signer("nope-1").sign(claims()), t1)
            assert isinstance(first, SsfError) and first.err == "invalid_key"
            assert "refetched just now" in first.description
            assert jwks_server.hits == 2  # refetched once

            t2 = t1 + timedelta(seconds=30)  # a second unknown kid inside the window
            second = await _outcome(verifier, rsa_signer("nope-2").sign(claims()), t2)
            assert isinstance(second, SsfError) and second.err == "invalid_key"
            assert jwks_server.hits == 2  # no refetch
            assert isinstance(await _outcome(verifier, rsa_key.sign(claims()), t2), VerifiedSet)

    asyncio.run(main())


def test_concurrent_unknown_kids_share_one_fetch(jwks_server: JwksServer) -> None:
    signer = rsa_signer("fresh")
    jwks_server.serve(jwks_of(signer))

    async def main() -> None:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url)
            tokens = [signer.sign(claims(jti=f"c{i}")) for i in range(20)]
            tokens += [rsa_signer(f"bogus-{i}").sign(claims()) for i in range(3)]
            outcomes = await asyncio.gather(*(_outcome(verifier, t, NOW) for t in tokens))
            assert all(isinstance(o, VerifiedSet) for o in outcomes[:20])
            assert all(isinstance(o, SsfError) and o.err == "invalid_key" for o in outcomes[20:])

    asyncio.run(main())
    assert jwks_server.hits == 1


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"<html>oops</html>", 200, "not JSON"),
        (b'{"no": "keys"}', 200, '"keys" array'),
        (b"[]", 200, '"keys" array'),
        (b'{"keys": []}', 500, "HTTP 500"),
        (b'{"keys": []}', 404, "HTTP 404"),
    ],
)
def test_unusable_jwks_document(
    jwks_server: JwksServer, rsa_key: Signer, body: bytes, status: int, reason: str
) -> None:
    jwks_server.serve(body, status)

    async def main() -> SsfError | VerifiedSet:
        async with _client() as client:
            return await _outcome(_verifier(client, jwks_server.url), rsa_key.sign(claims()), NOW)

    error = asyncio.run(main())
    assert isinstance(error, SsfError) and error.err == "invalid_key"
    assert reason in error.description


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_oversized_jwks_is_refused(
    jwks_server: JwksServer, rsa_key: Signer, declared: bool
) -> None:
    padded = jwks_of(rsa_key) | {"padding": "x" * 50_000}
    jwks_server.serve(padded)
    jwks_server.send_length = declared

    async def main() -> SsfError | VerifiedSet:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url, max_bytes=4096)
            return await _outcome(verifier, rsa_key.sign(claims()), NOW)

    error = asyncio.run(main())
    assert isinstance(error, SsfError) and error.err == "invalid_key"
    assert "4096" in error.description


def test_failed_refetch_keeps_the_previous_keys(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(jwks_of(rsa_key))

    async def main() -> None:
        async with _client() as client:
            verifier = _verifier(client, jwks_server.url)
            assert isinstance(await _outcome(verifier, rsa_key.sign(claims()), NOW), VerifiedSet)
            jwks_server.serve(b"garbage", 503)
            later = NOW + timedelta(minutes=5)
            miss = await _outcome(verifier, rsa_signer("new").sign(claims()), later)
            assert isinstance(miss, SsfError) and "HTTP 503" in miss.description
            assert isinstance(await _outcome(verifier, rsa_key.sign(claims()), later), VerifiedSet)

    asyncio.run(main())


def test_unreachable_jwks(rsa_key: Signer) -> None:
    async def main() -> SsfError | VerifiedSet:
        async with _client() as client:
            verifier = _verifier(client, "http://127.0.0.1:9/jwks.json", timeout_seconds=2)
            return await _outcome(verifier, rsa_key.sign(claims()), NOW)

    error = asyncio.run(main())
    assert isinstance(error, SsfError) and error.err == "invalid_key"
    assert "fetch failed" in error.description


def test_refresh_respects_the_rate_limit(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(jwks_of(rsa_key))

    async def main() -> None:
        async with _client() as client:
            cache = JwksCache(jwks_uri=jwks_server.url, client=client, min_refresh_seconds=30)
            assert await cache.refresh(now=NOW)
            assert not await cache.refresh(now=NOW + timedelta(seconds=29))
            assert await cache.refresh(now=NOW + timedelta(seconds=30))
            assert cache.fetches == 2 and [k.kid for k in cache.keys] == ["rsa-1"]

    asyncio.run(main())
    assert jwks_server.hits == 2


def test_jwks_uri_must_be_https_unless_loopback() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ValueError, match="https"):
        JwksCache(jwks_uri="http://idp.example.com/jwks", client=client)
    JwksCache(jwks_uri="http://idp.example.com/jwks", client=client, allow_http=True)
    JwksCache(jwks_uri="http://localhost:8080/jwks", client=client)
    JwksCache(jwks_uri="https://idp.example.com/jwks", client=client)
    with pytest.raises(ValueError, match="AsyncClient"):
        JwksCache(jwks_uri="https://idp.example.com/jwks")
    with pytest.raises(ValueError, match="exactly one"):
        JwksCache()
    asyncio.run(client.aclose())


# --- JWK parsing ----------------------------------------------------------------------------


def test_inline_jwks_parsed_once_into_key_objects(rsa_key: Signer, ec_key: Signer) -> None:
    cache = JwksCache(jwks=orjson.dumps(jwks_of(rsa_key, ec_key)))
    assert [(k.kid, k.kty) for k in cache.keys] == [("rsa-1", "RSA"), ("ec-1", "EC")]
    assert cache.cached("rsa-1", "RS256") is cache.cached("rsa-1", "RS256")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda j: j | {"use": "enc"}, "use"),
        (lambda j: j | {"key_ops": ["encrypt"]}, "key_ops"),
        (lambda j: j | {"kty": "oct", "k": b64(b"secret")}, "oct"),
        (lambda j: j | {"kty": "RSA-ish"}, "kty"),
        (lambda j: {k: v for k, v in j.items() if k != "n"}, "missing n"),
        (lambda j: j | {"n": "not base64!"}, "base64url"),
        (lambda j: j | {"kid": 5}, "kid"),
    ],
)
def test_unusable_rsa_jwk(rsa_key: Signer, mutate: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_jwk(mutate(rsa_key.jwk))


def test_small_rsa_keys_are_skipped() -> None:
    weak = rsa_signer("weak", bits=1024)
    with pytest.raises(ValueError, match="under 2048"):
        parse_jwk(weak.jwk)


def test_ec_point_must_be_on_the_curve(ec_key: Signer) -> None:
    jwk = ec_key.jwk | {"y": b64(b"\x01" * 32)}
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message
        parse_jwk(jwk)
    with pytest.raises(ValueError, match="32 bytes"):
        parse_jwk(ec_key.jwk | {"x": b64(b"\x01" * 31)})
    with pytest.raises(ValueError, match="curve"):
        parse_jwk(ec_key.jwk | {"crv": "secp256k1"})


def test_jwks_with_no_usable_key(rsa_key: Signer) -> None:
    keys, skipped = parse_jwks({"keys": [rsa_key.jwk | {"use": "enc"}, "junk"]})
    assert keys == ()
    assert len(skipped) == 2
    cache = JwksCache(jwks={"keys": [rsa_key.jwk | {"use": "enc"}]})
    with pytest.raises(SsfError) as error:
        asyncio.run(cache.key("rsa-1", "RS256", now=NOW))
    assert error.value.err == "invalid_key"


@pytest.mark.parametrize("document", [b"nope", b"{}", {"keys": {}}, [1], "x"])
def test_not_a_jwks(document: Any) -> None:
    with pytest.raises(SsfError) as error:
        JwksCache(jwks=document)
    assert error.value.err == "invalid_key"
