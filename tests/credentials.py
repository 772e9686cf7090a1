"""Credentials for tests that drive the API: API keys minted straight into the store of a
started app (the lifespan has run, so ``app.state.services`` exists).

There is no switch that turns authentication off; tests authenticate like any client.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient

from revocation.txn import writing
from tokenwarden.auth.api_keys import create_key


def mint_key(
    app: FastAPI,
    *,
    tenant: str | None = None,
    scopes: Iterable[str] = ("admin",),
    role: str | None = None,
) -> str:
    """A new key in the started ``app``'s store (default: an admin of every tenant)."""
    with writing(app.state.services.db) as conn:
        issued = create_key(
            conn,
            tenant=tenant,
            scopes=list(scopes),
            role=role,
            name="test",
            actor="test",
            now=datetime.now(UTC),
        )
    return issued.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def authorize(client: TestClient, **kwargs: object) -> str:
    """Mint a key (``mint_key`` arguments) and send it with every request of ``client``."""
    key = mint_key(client.app, **kwargs)  # type: ignore[arg-type]
    client.headers["Authorization"] = f"Bearer {key}"
    return key
