"""``tokenwarden ssf connect | status | verify`` against a real SSF transmitter on 127.0.0.1,
and the embedded service polling it (RFC 8936) and acting on what it polls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.credentials import bearer, mint_key
from tests.ssf.helpers import AUDIENCE, ec_signer
from tests.ssf.transmitter import MGMT_TOKEN, FakeTransmitter
from tokenwarden.app import create_app
from tokenwarden.cli import app as cli
from tokenwarden.server import running
from tokenwarden.settings import Settings


@pytest.fixture
def transmitter() -> Iterator[FakeTransmitter]:
    with FakeTransmitter(ec_signer("tx-1")) as server:
        yield server


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'connect.db'}"
    monkeypatch.setenv("TOKENWARDEN_DATABASE_URL", url)
    return url


def wait_for(condition: object, seconds: float = 20.0) -> bool:
    """Wait for a background effect (the poller) with a deadline; no fixed sleeps."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def connect(transmitter: FakeTransmitter, *extra: str) -> str:
    result = CliRunner().invoke(
        cli,
        [
            "ssf",
            "connect",
            transmitter.issuer,
            "--audience",
            AUDIENCE,
            "--token",
            MGMT_TOKEN,
            "--tenant",
            "acme",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "connected" in result.output
    return result.output.split("stream ", 1)[1].split(" ", 1)[0]


def test_poll_stream_connect_receive_status_and_verify(
    transmitter: FakeTransmitter, db_url: str
) -> None:
    stream_id = connect(transmitter, "--poll")
    assert transmitter.streams[stream_id]["delivery"]["method"] == "urn:ietf:rfc:8936"

    with (
        running(app := create_app(Settings(database_url=db_url))) as base,
        httpx.Client(base_url=base, headers=bearer(mint_key(app))) as http,
    ):
        family = {
            "time": 1_800_000_000,
            "tenant": "acme",
            "action": "token.issued",
            "user": "jane@acme.example",
            "token": {"id": "rt-0", "family_id": "fam-1", "type": "refresh_token"},
        }
        assert http.post("/v1/events?wait=true", json=[family]).status_code == 202
        assert http.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"}).json()["allow"]

        # the transmitter queues a CAEP session-revoked for jane; the service polls it
        transmitter.publish(stream_id, "jti-poll-1")
        assert wait_for(lambda: "jti-poll-1" in transmitter.acked)
        denied = http.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"}).json()
        assert denied["allow"] is False
        [order] = http.get("/v1/orders").json()["items"]
        assert order["rule"] == "caep-session-revoked-revokes-families"

        # a redelivery of an acked SET is acked again and not acted on twice
        transmitter.publish(stream_id, "jti-poll-1")
        assert wait_for(lambda: transmitter.acked.count("jti-poll-1") == 2)
        assert len(http.get("/v1/orders").json()["items"]) == 1

        # a SET for another audience is reported in setErrs with the RFC 8935 code
        transmitter.publish(
            stream_id, "jti-bad", token=transmitter.sign("jti-bad", aud="https://x/")
        )
        assert wait_for(lambda: "jti-bad" in transmitter.set_errs)
        assert transmitter.set_errs["jti-bad"]["err"] == "invalid_audience"

        verified = CliRunner().invoke(cli, ["ssf", "verify", transmitter.issuer, "--wait", "20"])
        assert verified.exit_code == 0, verified.output
        assert "verified" in verified.output

    status = CliRunner().invoke(cli, ["ssf", "status"])
    assert status.exit_code == 0, status.output
    assert f"stream {stream_id}" in status.output
    assert "status enabled" in status.output
    assert "verified never" not in status.output


def test_push_stream_connect_records_a_generated_authorization(
    transmitter: FakeTransmitter, db_url: str
) -> None:
    stream_id = connect(transmitter, "--push", "--push-url", "https://tw.example/ssf/events")
    delivery = transmitter.streams[stream_id]["delivery"]
    assert delivery["method"] == "urn:ietf:rfc:8935"
    assert delivery["endpoint_url"] == "https://tw.example/ssf/events"
    header = delivery["authorization_header"]
    assert header.startswith("Bearer ") and len(header) > 30

    with (
        running(app := create_app(Settings(database_url=db_url))) as base,
        httpx.Client(base_url=base, headers=bearer(mint_key(app))) as http,
    ):
        token = transmitter.sign("jti-push-1")
        ok = http.post(
            "/ssf/events",
            content=token,
            headers={"authorization": header, "content-type": "application/secevent+jwt"},
        )
        assert ok.status_code == 202, ok.text
        wrong = http.post(
            "/ssf/events",
            content=transmitter.sign("jti-push-2"),
            headers={"authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401


def test_connect_without_push_url_is_a_clear_error(
    transmitter: FakeTransmitter, db_url: str
) -> None:
    result = CliRunner().invoke(
        cli, ["ssf", "connect", transmitter.issuer, "--audience", AUDIENCE, "--token", MGMT_TOKEN]
    )
    assert result.exit_code == 1
    assert "--push-url" in result.output


def test_verify_an_unknown_issuer_is_a_clear_error(db_url: str) -> None:
    result = CliRunner().invoke(cli, ["ssf", "verify", "https://nobody.example/", "--wait", "1"])
    assert result.exit_code == 1
    assert "ssf connect" in result.output
