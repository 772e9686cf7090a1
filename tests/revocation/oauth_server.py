"""A real OAuth 2.0 server for the RFC 7009 adapter: panva's ``oidc-provider`` under node.

``tests/oauth_server`` holds its ``package.json``, lockfile and ``server.js``. The first test
that needs it runs ``npm ci`` there when ``node_modules`` is missing or older than the
lockfile (so ``make test`` works on a fresh machine and CI can cache ``node_modules``), then
starts ``node server.js`` on a free loopback port and waits for its ready line.

``authorize`` drives the real authorization code flow with PKCE (RFC 7636) over HTTP —
the server's headless interactions log in and consent — and redeems the code at the token
endpoint with the client's own authentication, giving a real refresh token (RFC 6749 §4.1).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from revocation.adapters.client_auth import (
    ClientAuth,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
)

HARNESS = Path(__file__).resolve().parents[1] / "oauth_server"
REDIRECT_URI = "https://client.example/cb"
ACCOUNT = "jane@acme.example"
#: RFC 6749 §2.3.1: Basic credentials are form-urlencoded first — a secret with ':' and
#: '+' in it proves we do that.
BASIC_SECRET = "basic:secret+with/odd=chars-0123456789"
POST_SECRET = "post-secret-0123456789abcdef"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


@dataclass
class Client:
    client_id: str
    method: str
    secret: str | None = None
    key: ec.EllipticCurvePrivateKey | None = None

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "client_id": self.client_id,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": self.method,
        }
        if self.secret is not None:
            meta["client_secret"] = self.secret
        if self.key is not None:
            pub = self.key.public_key().public_numbers()
            jwk = {"kty": "EC", "crv": "P-256", "x": _b64(pub.x), "y": _b64(pub.y), "kid": "k1"}
            meta["jwks"] = {"keys": [jwk]}
            meta["token_endpoint_auth_signing_alg"] = "ES256"
        return meta

    def auth(self, audience: str) -> ClientAuth:
        if self.method == "client_secret_basic":
            return ClientSecretBasic(self.client_id, self.secret or "")
        if self.method == "client_secret_post":
            return ClientSecretPost(self.client_id, self.secret or "")
        assert self.key is not None
        return PrivateKeyJwt(self.client_id, self.key, audience=audience, alg="ES256", kid="k1")


@dataclass
class OAuthServer:
    issuer: str
    clients: dict[str, Client] = field(default_factory=dict)

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def revocation_endpoint(self) -> str:
        return self.issuer + "/token/revocation"

    @property
    def introspection_endpoint(self) -> str:
        return self.issuer + "/token/introspection"

    def _post(self, http: httpx.Client, url: str, client: Client, form: dict[str, str]) -> Any:
        headers: dict[str, str] = {}
        client.auth(url).apply(form, headers, now=datetime.now(UTC))
        r = http.post(url, data=form, headers=headers)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text}"
        return r.json()

    def authorize(self, client: Client) -> dict[str, Any]:
        """The authorization code flow with PKCE; the token endpoint's answer."""
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            url: str = self.issuer + "/auth"
            params: dict[str, str] | None = {
                "client_id": client.client_id,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": "openid offline_access",
                "prompt": "consent",
                "state": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            for _ in range(10):
                r = http.get(url, params=params)
                params = None
                assert r.status_code in (302, 303), f"{url}: {r.status_code} {r.text[:300]}"
                location = r.headers["location"]
                if location.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(location).query)
                    assert "code" in query, location
                    code = query["code"][0]
                    break
                url = location if location.startswith("http") else self.issuer + location
            else:
                raise AssertionError("the authorization flow did not reach the redirect URI")
            return self._post(
                http,
                self.token_endpoint,
                client,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
            )

    def refresh(self, client: Client, refresh_token: str) -> dict[str, Any]:
        with httpx.Client(timeout=10) as http:
            return self._post(
                http,
                self.token_endpoint,
                client,
                {"grant_type": "refresh_token", "refresh_token": refresh_token},
            )

    def introspect(self, client: Client, token: str, hint: str | None = None) -> dict[str, Any]:
        """RFC 7662 §2.1: the introspection response for ``token``."""
        form = {"token": token}
        if hint:
            form["token_type_hint"] = hint
        with httpx.Client(timeout=10) as http:
            return dict(self._post(http, self.introspection_endpoint, client, form))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_installed() -> None:
    """``npm ci`` in the harness when ``node_modules`` is missing or stale."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the oidc-provider integration tests")
    lock = HARNESS / "package-lock.json"
    marker = HARNESS / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HARNESS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {HARNESS} failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def running_server(tmp: Path) -> Iterator[OAuthServer]:
    ensure_installed()
    port = _free_port()
    clients = {
        "client_secret_basic": Client("tw-basic", "client_secret_basic", secret=BASIC_SECRET),
        "client_secret_post": Client("tw-post", "client_secret_post", secret=POST_SECRET),
        "private_key_jwt": Client(
            "tw-jwt", "private_key_jwt", key=ec.generate_private_key(ec.SECP256R1())
        ),
    }
    config = tmp / "oauth-server.json"
    config.write_text(
        json.dumps(
            {"port": port, "account": ACCOUNT, "clients": [c.metadata() for c in clients.values()]}
        )
    )
    proc = subprocess.Popen(
        ["node", str(HARNESS / "server.js"), str(config)],
        cwd=HARNESS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line or proc.poll() is not None:
                break
        if not line.strip():
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"oidc-provider did not start: {err}")
        ready = json.loads(line)
        yield OAuthServer(issuer=ready["issuer"], clients=clients)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
