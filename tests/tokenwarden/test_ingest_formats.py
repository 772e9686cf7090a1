"""Vendor log formats through the API, the Splunk HEC endpoint and replay (issue 6)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from splunk_hec_handler import SplunkHecHandler
from typer.testing import CliRunner

from tests.credentials import authorize, bearer, mint_key
from tokenwarden.app import create_app
from tokenwarden.cli import app as cli
from tokenwarden.server import running
from tokenwarden.settings import HecToken, IngestSettings, Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
HEC_TOKEN = "11111111-2222-3333-4444-555555555555"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def case(fmt: str, needle: str) -> dict[str, Any]:
    cases = json.loads((FIXTURES / f"{fmt}.json").read_text())["cases"]
    return next(c for c in cases if needle in c["name"])


def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'fmt.db'}",
        ingest=IngestSettings(
            hec_tokens=[HecToken(token=HEC_TOKEN, tenant="acme")],  # type: ignore[arg-type]
            default_tenant="acme",
        ),
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tmp_path))) as c:
        authorize(c)
        yield c


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [
        ("okta", "reuse detected by a custom authorization server"),
        ("auth0", "ferrt"),
    ],
)
def test_idp_reuse_records_revoke_the_family_end_to_end(
    client: TestClient, fmt: str, needle: str
) -> None:
    c = case(fmt, needle)
    r = client.post(f"/v1/events?wait=true&format={fmt}", json=[c["record"]])
    assert r.status_code == 202, r.text
    assert r.json()["detections"] == 1
    assert r.json()["orders"] == 1
    [det] = client.get("/v1/detections").json()["items"]
    assert det["detector"] == "refresh_reuse"
    assert det["evidence"]["reported_by"] == fmt
    [order] = client.get("/v1/orders").json()["items"]
    assert order["target"]["kind"] == "family"
    assert order["status"] == "done"
    family = order["target"]["value"]
    check = client.post(
        "/v1/check", json={"tenant": order["target"]["tenant"], "family_id": family}
    )
    assert check.json()["allow"] is False


def test_formats_are_detected_per_record(client: TestClient) -> None:
    okta = case("okta", "refresh grant issues")["record"]
    auth0 = case("auth0", "sertft")["record"]
    ignored = case("okta", "a LogEvent we do not watch")["record"]
    native = {
        "time": 1_800_000_000,
        "tenant": "acme",
        "action": "token.used",
        "token": {"id": "at-1", "family_id": "f-1"},
    }
    r = client.post("/v1/events?wait=true", json=[okta, auth0, ignored, native, {"what": 1}])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 3
    assert body["ignored"] == 1
    assert [x["index"] for x in body["rejected"]] == [4]
    assert "format" in body["rejected"][0]["reason"]


def test_unknown_format_is_a_clear_error(client: TestClient) -> None:
    r = client.post("/v1/events?format=syslog", json=[{"a": 1}])
    assert r.status_code == 400
    assert r.json()["error"] == "unknown_format"
    assert "okta" in r.json()["detail"]


def test_rejected_records_are_kept_for_inspection_redacted(client: TestClient) -> None:
    bad = {
        "time": "never",
        "tenant": "acme",
        "action": "token.used",
        "attributes": {"authorization": f"Bearer {JWT}"},
    }
    r = client.post("/v1/events?format=native", json=[bad, {"nope": True}])
    assert r.status_code == 422
    kept = client.get("/v1/rejected").json()
    assert kept["total"] == 2
    first = kept["records"][-1]
    assert first["index"] == 0
    assert first["source"] == "/v1/events"
    assert "RFC 3339" in first["reason"]
    assert JWT not in first["record"]
    assert "never" in first["record"]


# -- Splunk HEC ------------------------------------------------------------------------------


def hec(
    client: TestClient | httpx.Client,
    body: bytes,
    *,
    token: str | None = HEC_TOKEN,
    path: str = "/services/collector/event",
) -> Any:
    # no token: an empty header overrides the client's default (admin) credential
    headers = {"authorization": f"Splunk {token}" if token else ""}
    return client.post(path, content=body, headers=headers)


def test_hec_concatenated_events_with_sourcetypes(client: TestClient) -> None:
    okta = case("okta", "reuse detected by a custom authorization server")["record"]
    native = {
        "time": 1_800_000_000,
        "tenant": "acme",
        "action": "token.used",
        "token": {"id": "at-1", "family_id": "f-1"},
    }
    body = (
        orjson.dumps({"event": okta, "sourcetype": "okta:im2", "host": "fw-1"})
        + orjson.dumps({"event": json.dumps(native), "sourcetype": "tokenwarden"})
        + b"\n"
        + orjson.dumps(
            {
                "event": {"tenant": "globex", "time": 1, "action": "token.used"},
                "sourcetype": "tokenwarden",
            }
        )
    )
    r = hec(client, body)
    assert r.status_code == 200
    assert r.json() == {"text": "Success", "code": 0}
    kept = client.get("/v1/rejected", params={"source": "/services/collector/event"}).json()
    [foreign] = kept["records"]
    assert foreign["index"] == 2
    assert "not this token's tenant" in foreign["reason"]


@pytest.mark.parametrize(
    ("token", "body", "status", "code"),
    [
        (None, b'{"event": {}}', 401, 2),
        (HEC_TOKEN + "x", b'{"event": {"a": 1}}', 403, 4),
        (HEC_TOKEN, b"", 400, 5),
        (HEC_TOKEN, b'{"event": {"a": 1}} {not json', 400, 6),
        (HEC_TOKEN, b'{"time": 1}', 400, 12),
        (HEC_TOKEN, b'{"event": ""}', 400, 13),
    ],
)
def test_hec_errors_are_hec_shaped(
    client: TestClient, token: str | None, body: bytes, status: int, code: int
) -> None:
    r = hec(client, body, token=token)
    assert r.status_code == status
    assert r.json()["code"] == code
    assert r.json()["text"]


def test_hec_bad_authorization_scheme(client: TestClient) -> None:
    r = client.post(
        "/services/collector/event",
        content=b'{"event": {}}',
        headers={"authorization": "Basic abc"},
    )
    assert (r.status_code, r.json()["code"]) == (401, 3)


def test_hec_raw_endpoint_takes_lines(client: TestClient) -> None:
    okta = case("okta", "refresh grant issues")["record"]
    body = orjson.dumps(okta) + b"\n" + b"{broken\n"
    r = hec(client, body, path="/services/collector/raw?sourcetype=okta:im2")
    assert r.json() == {"text": "Success", "code": 0}
    kept = client.get("/v1/rejected", params={"source": "/services/collector/raw"}).json()
    assert [x["index"] for x in kept["records"]] == [1]


def test_hec_health(client: TestClient) -> None:
    r = client.get("/services/collector/health")
    assert (r.status_code, r.json()["code"]) == (200, 17)


def test_a_real_hec_client_library_delivers_events(tmp_path: Path) -> None:
    """splunk-hec-handler (PyPI) posts HEC events exactly as a Splunk client does."""
    app = create_app(settings(tmp_path))
    with running(app) as base, httpx.Client(base_url=base, headers=bearer(mint_key(app))) as http:
        port = int(base.rsplit(":", 1)[1])
        handler = SplunkHecHandler(
            "127.0.0.1",
            HEC_TOKEN,
            port=port,
            proto="http",
            ssl_verify=False,
            sourcetype="tokenwarden",
            empty_body=True,
        )
        logger = logging.getLogger("tests.hec.client")
        logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            logger.info(
                {
                    "time": 1_800_000_000,
                    "tenant": "acme",
                    "action": "token.issued",
                    "user": "jane@acme.example",
                    "token": {"id": "rt-hec", "family_id": "fam-hec", "type": "refresh_token"},
                }
            )
        finally:
            logger.removeHandler(handler)
        deadline = time.monotonic() + 20
        while http.get("/v1/families/fam-hec").status_code != 200:
            assert time.monotonic() < deadline, "the HEC event never reached the store"
            time.sleep(0.02)
        family = http.get("/v1/families/fam-hec").json()
        assert family["tenant"] == "acme"
        assert family["tokens"][0]["token_id"] == "rt-hec"


def test_replay_with_a_vendor_format(tmp_path: Path) -> None:
    src = tmp_path / "okta.ndjson"
    c = case("okta", "reuse detected by a custom authorization server")
    src.write_bytes(orjson.dumps(c["record"]) + b"\n")
    det = tmp_path / "det.ndjson"
    result = CliRunner().invoke(
        cli,
        [
            "replay",
            str(src),
            "--format",
            "okta",
            "--tenant",
            "acme",
            "--detections",
            str(det),
            "--database",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    [d] = [orjson.loads(line) for line in det.read_bytes().splitlines()]
    assert d["detector"] == "refresh_reuse"
