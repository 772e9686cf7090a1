"""End to end over real HTTP: uvicorn on a loopback port, the embedded pipeline, SQLite."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.credentials import bearer, mint_key
from tokenwarden.app import create_app
from tokenwarden.demo import story
from tokenwarden.server import running
from tokenwarden.settings import Settings


def test_replayed_refresh_token_revokes_its_family_over_http(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'e2e.db'}")
    normal, replay = story(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app = create_app(settings)
    with running(app) as base, httpx.Client(base_url=base, headers=bearer(mint_key(app))) as http:
        r = http.post("/v1/events", params={"wait": "true"}, json=normal)
        assert r.status_code == 202
        assert r.json()["detections"] == 0  # work, rotations and a benign race
        assert http.post("/v1/check", json={"tenant": "acme", "family_id": "fam-demo"}).json()[
            "allow"
        ]

        r = http.post("/v1/events", params={"wait": "true"}, json=replay)
        assert r.json() == {
            "accepted": 1,
            "rejected": [],
            "ignored": 0,
            "detections": 1,
            "orders": 1,
        }

        [detection] = http.get("/v1/detections").json()["items"]
        assert detection["detector"] == "refresh_reuse"
        assert detection["evidence"]["presented_token"] == "rt-2"
        assert detection["evidence"]["network"] == "as64999"
        [order] = http.get("/v1/orders").json()["items"]
        assert order["status"] == "done"
        assert order["target"]["value"] == "fam-demo"
        family = http.get("/v1/families/fam-demo").json()
        assert family["revoked_by_order"] == order["id"]
        assert {t["token_id"] for t in family["tokens"]} >= {"rt-1", "rt-2", "rt-3", "rt-4"}
        assert all(t["revoked_at"] for t in family["tokens"])
        denied = http.post("/v1/check", json={"tenant": "acme", "token_id": "rt-4b"}).json()
        assert denied["allow"] is False
        assert "fam-demo" in denied["reason"]

    # a restart remembers: state and store survive, and the same replay changes nothing
    app = create_app(settings)
    with running(app) as base, httpx.Client(base_url=base, headers=bearer(mint_key(app))) as http:
        r = http.post("/v1/events", params={"wait": "true"}, json=replay)
        assert r.json()["orders"] == 1  # decided again ...
        orders = http.get("/v1/orders").json()["items"]
        assert len(orders) == 1  # ... but idempotent in effect
        # the rotation state was reloaded from the snapshot: replaying rt-1 is still reuse
        rt1 = dict(
            replay[0],
            token={
                "parent_id": "rt-1",
                "id": "rt-y",
                "family_id": "fam-demo",
                "type": "refresh_token",
            },
        )
        assert (
            http.post("/v1/events", params={"wait": "true"}, json=[rt1]).json()["detections"] == 1
        )
