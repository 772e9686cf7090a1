"""OIDC bearer tokens (RFC 6750, RFC 7519, RFC 8725) against a real JWKS served over HTTP
on 127.0.0.1: the good ones become principals; every kind of bad one is 401."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from tests.ssf.conftest import JwksServer
from tests.ssf.helpers import Signer, b64, ec_signer, jwks_of, rsa_signer, sign_compact
from tests.tokenwarden.auth_fixtures import sqlite_url
from tokenwarden.app import create_app
from tokenwarden.auth.bearer import claim_at
from tokenwarden.settings import Settings

ISSUER = "https://idp.example.com/realms/ops"
AUDIENCE = "tokenwarden"


@pytest.fixture(scope="module")
def rsa() -> Signer:
    return rsa_signer("rsa-1")


@pytest.fixture(scope="module")
def ec() -> Signer:
    return ec_signer("ec-1")


@pytest.fixture
def jwks(rsa: Signer, ec: Signer) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.serve(jwks_of(rsa, ec))
        yield server


@pytest.fixture
def client(tmp_path: Path, jwks: JwksServer) -> Iterator[TestClient]:
    settings = Settings.model_validate(
        {
            "database_url": sqlite_url(tmp_path),
            "auth": {
                "oidc": {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_uri": jwks.url,
                    "roles_claim": "realm_access.roles",
                    "all_tenants_value": "*",
                    "role_map": {"tw-oncall": "responder"},
                    "jwks_min_refresh_seconds": 0,
                }
            },
        }
    )
    with TestClient(create_app(settings)) as c:
        yield c


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now - 5,
        "exp": now + 300,
        "tenant": "acme",
        "realm_access": {"roles": ["viewer", "offline_access"]},
    }
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def token(signer: Signer, **over: Any) -> str:
    return signer.sign(claims(**over), typ="JWT")


def whoami(client: TestClient, jwt: str) -> Any:
    return client.get("/v1/whoami", headers={"Authorization": f"Bearer {jwt}"})


def test_a_valid_token_is_a_principal(client: TestClient, rsa: Signer, ec: Signer) -> None:
    for signer in (rsa, ec):
        r = whoami(client, token(signer))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "tenant": "acme",
            "roles": ["viewer"],
            "scopes": [],
            "kind": "bearer",
            "subject": "alice",
        }
    viewer = {"Authorization": f"Bearer {token(rsa)}"}
    assert client.get("/v1/detections", headers=viewer).status_code == 200
    assert client.post("/v1/kill-switches", json={}, headers=viewer).status_code == 403


def test_roles_come_through_the_role_map_and_the_all_tenants_value(
    client: TestClient, rsa: Signer
) -> None:
    oncall = token(rsa, realm_access={"roles": ["tw-oncall"]})
    thrown = client.post(
        "/v1/kill-switches",
        json={"kind": "agent", "value": "crm", "reason": "injection"},
        headers={"Authorization": f"Bearer {oncall}"},
    )
    assert thrown.status_code == 201
    assert thrown.json()["actor"] == "bearer:alice"
    everyone = whoami(client, token(rsa, tenant="*", realm_access={"roles": ["admin"]})).json()
    assert (everyone["tenant"], everyone["roles"]) == (None, ["admin"])


def test_leeway_and_audience_lists(client: TestClient, rsa: Signer) -> None:
    assert whoami(client, token(rsa, exp=int(time.time()) - 10)).status_code == 200
    assert whoami(client, token(rsa, aud=["other", AUDIENCE])).status_code == 200


def _hs256_with_public_key(rsa: Signer) -> str:
    """The classic confusion: HMAC keyed with the verifier's own public key."""
    pem = rsa.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    return sign_compact(header, claims(), pem, "HS256")


def _alg_none() -> str:
    return sign_compact({"alg": "none", "typ": "JWT"}, claims(), None, "none")


def _forged(rsa: Signer) -> str:
    impostor = rsa_signer("rsa-1")  # same kid, another key
    return impostor.sign(claims(), typ="JWT")


def _tampered(rsa: Signer) -> str:
    header, _, sig = token(rsa).split(".")
    import orjson

    return f"{header}.{b64(orjson.dumps(claims(tenant='beta')))}.{sig}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda rsa: token(rsa, exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda rsa: token(rsa, exp=None), id="no-exp"),
        pytest.param(lambda rsa: token(rsa, nbf=int(time.time()) + 600), id="not-yet-valid"),
        pytest.param(_forged, id="forged-signature"),
        pytest.param(_tampered, id="tampered-payload"),
        pytest.param(lambda rsa: token(rsa, aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda rsa: token(rsa, aud=None), id="no-audience"),
        pytest.param(lambda rsa: token(rsa, iss="https://evil.example/"), id="wrong-issuer"),
        pytest.param(lambda rsa: _alg_none(), id="alg-none"),
        pytest.param(_hs256_with_public_key, id="hs256-with-public-key"),
        pytest.param(lambda rsa: token(rsa, tenant=None), id="no-tenant"),
        pytest.param(lambda rsa: token(rsa, sub=None), id="no-subject"),
        pytest.param(lambda rsa: rsa.sign(claims(), typ="secevent+jwt"), id="a-set-not-a-token"),
        pytest.param(lambda rsa: rsa.sign(claims(), typ="JWT", alg="RS512"), id="alg-not-allowed"),
        pytest.param(
            lambda rsa: rsa.sign(claims(), typ="JWT", header={"kid": "unknown"}), id="unknown-kid"
        ),
        pytest.param(
            lambda rsa: rsa.sign(claims(), typ="JWT", header={"crit": ["exp"]}), id="crit"
        ),
        pytest.param(lambda rsa: token(rsa) + "x", id="bad-base64"),
        pytest.param(lambda rsa: "a.b.c", id="garbage"),
    ],
)
def test_bad_tokens_are_401(client: TestClient, rsa: Signer, make: Any) -> None:
    r = whoami(client, make(rsa))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert r.headers["www-authenticate"] == 'Bearer realm="tokenwarden", error="invalid_token"'


def test_an_unknown_kid_refetches_the_jwks_once(
    client: TestClient, jwks: JwksServer, rsa: Signer
) -> None:
    assert whoami(client, token(rsa)).status_code == 200
    before = jwks.hits
    rotated = rsa_signer("rsa-2")
    jwks.serve(jwks_of(rsa, rotated))
    assert whoami(client, token(rotated)).status_code == 200
    assert jwks.hits == before + 1


def test_a_claim_path_reads_nested_and_dotted_names() -> None:
    doc = {"realm_access": {"roles": ["a"]}, "https://x.example/roles": ["b"]}
    assert claim_at(doc, "realm_access.roles") == ["a"]
    assert claim_at(doc, "https://x.example/roles") == ["b"]
    assert claim_at(doc, "realm_access.nope") is None


def test_hmac_and_none_cannot_be_configured(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tokenwarden.auth.settings import OidcSettings

    for algs in (["HS256"], ["none"], ["RS256", "HS512"], []):
        with pytest.raises(ValidationError):
            OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_uri="https://x/", algorithms=algs)
