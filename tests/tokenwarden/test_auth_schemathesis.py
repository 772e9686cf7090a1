"""Property-based: requests generated from the app's own OpenAPI schema (schemathesis),
sent with an admin key of every tenant to the app served in-process on 127.0.0.1, never
get a 5xx. Bounded (``MAX_EXAMPLES`` per operation) so the run takes well under two
minutes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.credentials import bearer, mint_key
from tokenwarden.app import create_app
from tokenwarden.server import running
from tokenwarden.settings import Settings

#: per operation; ``TW_SCHEMATHESIS_EXAMPLES`` raises it for a longer hunt
MAX_EXAMPLES = int(os.environ.get("TW_SCHEMATHESIS_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp / 'tw.db'}"), on_admin_key=lambda _: None
    )
    with running(app) as base:
        headers = bearer(mint_key(app))
        # the generated requests really are authenticated (not a run of 401s)
        assert httpx.get(f"{base}/v1/whoami", headers=headers).status_code == 200
        yield base, headers


# the schema only: building the app does no I/O (that starts with its lifespan)
schema = schemathesis.openapi.from_dict(create_app(Settings(database_url="sqlite://")).openapi())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors(case: Any, served: tuple[str, dict[str, str]]) -> None:
    base, headers = served
    response = case.call(base_url=base, headers=headers, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
