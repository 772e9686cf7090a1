"""A batch with bad records keeps the good ones; each bad one is rejected with its index
and a specific reason; recognised-but-ignored records are neither (issue 6, item 4)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ingest import iter_ndjson
from ingest.normalizers import NORMALIZERS, NormalizedBatch, normalize_batch
from tests.ingest.normalizers.helpers import HASHER, load


def okta_record(name_start: str) -> dict[str, Any]:
    record: dict[str, Any] = next(
        c["record"] for c in load("okta")["cases"] if c["name"].startswith(name_start)
    )
    return copy.deepcopy(record)


def test_a_partly_bad_okta_batch_keeps_the_good_records() -> None:
    good = okta_record("refresh grant")
    ignored = okta_record("a LogEvent we do not watch")
    bad_time = {**okta_record("client credentials"), "published": "yesterday"}
    bad_actor = {**okta_record("client credentials"), "actor": "0oa9reportsvc0009x5d7"}
    no_type = {k: v for k, v in good.items() if k != "eventType"}
    wrong_type = {**good, "eventType": 42}
    items: list[Any] = [
        good,
        "a string",
        7,
        None,
        ["a", "list"],
        no_type,
        wrong_type,
        ignored,
        bad_time,
        bad_actor,
        okta_record("refresh token reuse"),
    ]

    batch = normalize_batch(items, normalizer=NORMALIZERS["okta"], hasher=HASHER, tenant="acme")

    assert isinstance(batch, NormalizedBatch)
    assert [e.id for e in batch.events] == [
        "okta:9b1f4c2e-7a3d-11ef-8c1a-5d2e0f9a7b31",
        "okta:7f3a0b21-7a40-11ef-b2d3-4e5f6a7b8c9d",
    ]
    assert batch.ignored == [7]
    reasons = {r.index: r.reason for r in batch.rejected}
    assert reasons == {
        1: "okta: a record must be a JSON object, not a string",
        2: "okta: a record must be a JSON object, not a number",
        3: "okta: a record must be a JSON object, not null",
        4: "okta: a record must be a JSON object, not an array",
        5: "okta: eventType: required field is missing",
        6: "okta: eventType: expected a non-empty string",
        8: "okta: time: time 'yesterday' is not RFC 3339",
        9: "okta: actor: expected an object",
    }
    assert batch.total == len(items)


def test_undecodable_ndjson_lines_are_rejected_in_place() -> None:
    body = b'{"event": "grant.revoked", "ts": 1795420800, "grantId": "g1"}\n{not json\n\n[1]\n'
    batch = normalize_batch(
        iter_ndjson(body), normalizer=NORMALIZERS["oidc-provider"], hasher=HASHER, tenant="acme"
    )
    assert len(batch.events) == 1
    assert batch.rejected[0].index == 1
    assert batch.rejected[0].reason.startswith("malformed JSON")
    assert batch.rejected[1].index == 2
    assert batch.rejected[1].reason == "oidc-provider: a record must be a JSON object, not an array"


def test_indexes_continue_from_start() -> None:
    batch = normalize_batch(
        [{}], normalizer=NORMALIZERS["auth0"], hasher=HASHER, tenant="acme", start=500
    )
    assert batch.rejected[0].index == 500
    assert batch.rejected[0].reason == "auth0: type: required field is missing"


class _Broken:
    name = "broken"

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        raise KeyError("a bug")

    def matches(self, record: Mapping[str, Any]) -> bool:
        return False


def test_a_normalizer_bug_rejects_the_record_not_the_batch() -> None:
    batch = normalize_batch([{}, {}], normalizer=_Broken(), hasher=HASHER, tenant="acme")
    assert [r.reason for r in batch.rejected] == ["broken: normalizer failed (KeyError)"] * 2


def test_a_value_orjson_cannot_digest_is_rejected_not_raised() -> None:
    # orjson decodes JSON integers beyond 64 bits as floats, but other decoders do not
    record = {"time": 10**30, "action": "token.used", "tenant": "acme"}
    batch = normalize_batch([record], normalizer=NORMALIZERS["native"], hasher=HASHER, tenant=None)
    assert batch.events == []
    assert batch.rejected[0].index == 0
    assert batch.rejected[0].reason.startswith("native: ")


def test_validation_errors_name_the_field() -> None:
    record = {"time": "2026-11-23T08:00:00Z", "action": "token.stolen", "tenant": "acme"}
    batch = normalize_batch([record], normalizer=NORMALIZERS["native"], hasher=HASHER, tenant=None)
    assert batch.rejected[0].reason.startswith("native: action: unknown action 'token.stolen'")
