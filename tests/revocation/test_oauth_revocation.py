"""The ``oauth_revocation`` adapter: RFC 7009 requests with each client authentication
(RFC 6749 §2.3.1, RFC 7523), and — against a real OAuth server, panva's oidc-provider —
a refresh token obtained through the authorization code flow, revoked by tokenwarden,
is no longer active per RFC 7662 introspection, and neither is its grant."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from revocation import TargetKind, store
from revocation.adapters.client_auth import JWT_BEARER, PrivateKeyJwt, sign_jws
from revocation.adapters.oauth_revocation import PLUGIN, OAuthRevocation, OAuthRevocationConfig
from revocation.delivery import (
    AdapterConfigError,
    AdapterDeps,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    Scope,
    TokenRef,
)
from revocation.tables import audit_log
from tests.revocation.fakes import Clock, dispatcher, routing
from tests.revocation.helpers import at, order, rows, token_event
from tests.revocation.oauth_server import OAuthServer, running_server

ENDPOINT = "https://idp.example/oauth2/revoke"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def delivery(*tokens: tuple[str, str | None], target: str = "fam-1") -> Delivery:
    kind = TargetKind.TOKEN if target.startswith("tok:") else TargetKind.FAMILY
    o = order(kind, target.removeprefix("tok:"))
    refs = tuple(TokenRef(t, "fam-1", ty, at(-i), None) for i, (t, ty) in enumerate(tokens))
    return Delivery(id=f"{o.id}/idp", adapter="idp", attempt=1, order=o, scope=Scope(tokens=refs))


def adapter(handler: Any, **cfg: Any) -> tuple[OAuthRevocation, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = OAuthRevocationConfig.model_validate(
        {"revocation_endpoint": ENDPOINT, "client_id": "tw client", **cfg}
    )
    return OAuthRevocation("idp", config, http), http


def deliver(handler: Any, d: Delivery, **cfg: Any) -> Any:
    async def run() -> Any:
        a, http = adapter(handler, **cfg)
        async with http:
            return await a.deliver(d, now=NOW)

    return asyncio.run(run())


class Recorder:
    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if self.responses else httpx.Response(200)

    def forms(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(r.content.decode()).items()} for r in self.requests]


def test_client_secret_basic_form_encodes_before_base64() -> None:
    """RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded, then Basic."""
    rec = Recorder()
    out = deliver(
        rec,
        delivery(("rt-2", "refresh_token")),
        auth_method="client_secret_basic",
        client_secret="p@ss:w+rd/=",
    )
    assert out == {"revoked": 1, "unsupported": 0, "skipped_hashed": 0}
    (req,) = rec.requests
    assert req.url == ENDPOINT
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    user_pass = base64.b64decode(req.headers["authorization"].removeprefix("Basic ")).decode()
    assert user_pass == "tw+client:p%40ss%3Aw%2Brd%2F%3D"
    assert rec.forms() == [{"token": "rt-2", "token_type_hint": "refresh_token"}]


def test_client_secret_post_puts_the_credentials_in_the_body() -> None:
    rec = Recorder()
    deliver(
        rec,
        delivery(("rt-2", "refresh_token")),
        auth_method="client_secret_post",
        client_secret="s3",
    )
    (req,) = rec.requests
    assert "authorization" not in req.headers
    assert rec.forms() == [
        {
            "token": "rt-2",
            "token_type_hint": "refresh_token",
            "client_id": "tw client",
            "client_secret": "s3",
        }
    ]


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("PS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_private_key_jwt_sends_a_fresh_rfc7523_assertion(alg: str, key: Any) -> None:
    rec = Recorder()
    deliver(
        rec,
        delivery(("rt-2", "refresh_token"), ("rt-1", "refresh_token")),
        auth_method="private_key_jwt",
        private_key=pem(key),
        key_id="k1",
        signing_alg=alg,
        assertion_audience="https://idp.example",
    )
    jtis = set()
    for form in rec.forms():
        assert form["client_assertion_type"] == JWT_BEARER
        assert form["client_id"] == "tw client"
        header = jwt.get_unverified_header(form["client_assertion"])
        assert (header["alg"], header["kid"], header["typ"]) == (alg, "k1", "JWT")
        claims = jwt.decode(
            form["client_assertion"],
            key.public_key(),
            algorithms=[alg],
            audience="https://idp.example",
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == "tw client"
        assert claims["exp"] - claims["iat"] == 60
        assert claims["iat"] == int(NOW.timestamp())
        jtis.add(claims["jti"])
    assert len(jtis) == 2  # never replayed, not even within one delivery


def test_a_key_that_does_not_fit_the_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        sign_jws({}, ec.generate_private_key(ec.SECP256R1()), alg="RS256", kid=None)
    with pytest.raises(ValueError, match="P-256"):
        PrivateKeyJwt("c", ec.generate_private_key(ec.SECP384R1()), audience="a", alg="ES256")


def test_which_tokens_newest_first_of_the_configured_types_hashes_skipped() -> None:
    rec = Recorder()
    d = delivery(
        ("rt-3", "refresh_token"),
        ("at-3", "access_token"),
        ("h1:" + "0" * 32, "refresh_token"),
        ("rt-2", "refresh_token"),
        ("rt-1", "refresh_token"),
    )
    out = deliver(rec, d, client_secret="s", max_tokens=2)
    assert [f["token"] for f in rec.forms()] == ["rt-3", "rt-2"]
    assert out == {"revoked": 2, "unsupported": 0, "skipped_hashed": 1}
    rec = Recorder()
    deliver(rec, d, client_secret="s", token_types=["access_token"])
    assert rec.forms() == [{"token": "at-3", "token_type_hint": "access_token"}]
    rec = Recorder()
    deliver(rec, delivery(target="tok:opaque-1"), client_secret="s")
    assert rec.forms() == [{"token": "opaque-1"}]  # type unknown: no hint (RFC 7009 §2.1)


def test_rfc7009_error_responses() -> None:
    unsupported = httpx.Response(400, json={"error": "unsupported_token_type"})
    out = deliver(
        Recorder(unsupported, httpx.Response(200)),
        delivery(("at-1", "refresh_token"), ("rt-1", "refresh_token")),
        client_secret="s",
    )
    assert out == {"revoked": 1, "unsupported": 1, "skipped_hashed": 0}
    with pytest.raises(DeliveryError, match="503") as info:
        deliver(
            Recorder(httpx.Response(503, headers={"retry-after": "30"})),
            delivery(("rt-1", "refresh_token")),
            client_secret="s",
        )
    assert info.value.retry_after == 30.0
    assert not isinstance(info.value, PermanentDeliveryError)
    with pytest.raises(PermanentDeliveryError, match=r"401 invalid_client.*credentials"):
        deliver(
            Recorder(httpx.Response(401, json={"error": "invalid_client"})),
            delivery(("rt-1", "refresh_token")),
            client_secret="s",
        )


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"auth_method": "client_secret_basic"}, "client_secret_basic needs client_secret"),
        ({"auth_method": "private_key_jwt"}, "exactly one of private_key, private_key_file"),
        ({"client_secret": "s", "revocation_endpoint": "idp.example"}, "revocation_endpoint"),
        ({"client_secret": "s", "auth_method": "mtls"}, "auth_method"),
    ],
)
def test_config_errors_are_clear(cfg: dict[str, Any], message: str) -> None:
    deps = AdapterDeps(db=sa.create_engine("sqlite://"), http=httpx.AsyncClient())
    base = {"revocation_endpoint": ENDPOINT, "client_id": "c"}
    with pytest.raises(AdapterConfigError, match=message):
        PLUGIN.build("idp", {**base, **cfg}, deps)
    with pytest.raises(AdapterConfigError, match="client authentication"):
        PLUGIN.build(
            "idp",
            {**base, "auth_method": "private_key_jwt", "private_key": "not a pem"},
            deps,
        )


# -- against oidc-provider -------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    with running_server(tmp_path_factory.mktemp("oauth")) as server:
        yield server


def adapter_config(server: OAuthServer, method: str) -> dict[str, Any]:
    client = server.clients[method]
    cfg: dict[str, Any] = {
        "revocation_endpoint": server.revocation_endpoint,
        "client_id": client.client_id,
        "auth_method": method,
    }
    if client.secret is not None:
        cfg["client_secret"] = client.secret
    if client.key is not None:
        cfg.update(private_key=pem(client.key), key_id="k1", signing_alg="ES256")
    return cfg


@pytest.mark.integration
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_a_refresh_token_revoked_through_the_adapter_is_inactive_with_its_grant(
    engine: sa.Engine, oauth_server: OAuthServer, method: str
) -> None:
    client = oauth_server.clients[method]
    first = oauth_server.authorize(client)
    rotated = oauth_server.refresh(client, first["refresh_token"])  # rotation on
    rt1, rt2, at2 = first["refresh_token"], rotated["refresh_token"], rotated["access_token"]
    assert oauth_server.introspect(client, rt1)["active"] is False  # rotated away
    live = oauth_server.introspect(client, rt2, "refresh_token")
    assert (live["active"], live["client_id"], live["sub"]) == (
        True,
        client.client_id,
        "jane@acme.example",
    )
    assert oauth_server.introspect(client, at2)["active"] is True

    # what tokenwarden saw of it: oidc-provider's opaque tokens are identified by their jti,
    # which is the token value, so the family's ids are what RFC 7009 needs
    family = f"grant-{method}"
    with engine.begin() as conn:
        store.record_tokens(
            conn,
            events=[
                token_event("token.issued", token_id=rt1, family=family),
                token_event("token.refreshed", token_id=rt2, parent=rt1, family=family, seconds=1),
                token_event(
                    "token.used", token_id=at2, family=family, kind="access_token", seconds=2
                ),
            ],
            now=at(10),
        )
    clock = Clock(now=datetime.now(UTC))
    o = order(TargetKind.FAMILY, family)
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("idp"))

    async def run() -> Any:
        async with httpx.AsyncClient() as http:
            idp = PLUGIN.build(
                "idp", adapter_config(oauth_server, method), AdapterDeps(engine, http)
            )
            return await dispatcher(engine, clock, idp).run_once()

    report = asyncio.run(run())
    assert report.delivered == [f"{o.id}/idp"], report.failed
    (done,) = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "delivery.succeeded"))
    # both refresh tokens of the family, newest first; the rotated one was already dead
    assert done.data["result"] == {"revoked": 2, "unsupported": 0, "skipped_hashed": 0}

    # RFC 7662: the refresh token is no longer active ...
    assert oauth_server.introspect(client, rt2, "refresh_token") == {"active": False}
    # ... and neither is anything of its grant (RFC 7009 §2.1)
    assert oauth_server.introspect(client, at2, "access_token") == {"active": False}
    assert oauth_server.introspect(client, first["access_token"]) == {"active": False}
    # a redelivery is harmless: RFC 7009 §2.2 answers 200 for an invalid token
    with engine.connect() as conn:
        view = store.get_order(conn, order_id=o.id)
    assert view is not None
    again = Delivery(
        id=f"{o.id}/idp",
        adapter="idp",
        attempt=2,
        order=view,
        scope=Scope(tokens=(TokenRef(rt2, family, "refresh_token", at(1), None),)),
    )

    async def redeliver() -> Any:
        async with httpx.AsyncClient() as http:
            idp = PLUGIN.build(
                "idp", adapter_config(oauth_server, method), AdapterDeps(engine, http)
            )
            return await idp.deliver(again, now=datetime.now(UTC))

    assert asyncio.run(redeliver()) == {"revoked": 1, "unsupported": 0, "skipped_hashed": 0}


@pytest.mark.integration
def test_wrong_credentials_are_a_permanent_failure_at_the_real_server(
    engine: sa.Engine, oauth_server: OAuthServer
) -> None:
    cfg = {**adapter_config(oauth_server, "client_secret_basic"), "client_secret": "wrong"}
    d = delivery(("whatever", "refresh_token"))

    async def run() -> Any:
        async with httpx.AsyncClient() as http:
            idp = PLUGIN.build("idp", cfg, AdapterDeps(engine, http))
            return await idp.deliver(d, now=datetime.now(UTC))

    with pytest.raises(PermanentDeliveryError, match="401 invalid_client"):
        asyncio.run(run())
