"""The declarative FieldMapping: RFC 6901 pointers, config validation, conversions."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.normalizers import FieldMapping, MappingConfigError, NormalizeError, parse_pointer
from ingest.normalizers.mapping import resolve
from tests.ingest.normalizers.helpers import GATEWAY, HASHER, load

# RFC 6901 §5: the example document and every pointer evaluated against it.
RFC6901_DOC: dict[str, Any] = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", RFC6901_DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_rfc6901_section_5_examples(pointer: str, value: Any) -> None:
    assert resolve(RFC6901_DOC, parse_pointer(pointer)) == value


@pytest.mark.parametrize("pointer", ["foo", "/a~2b", "/~", "/x~"])
def test_malformed_pointers_are_refused(pointer: str) -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        parse_pointer(pointer)


@pytest.mark.parametrize("pointer", ["/foo/2", "/foo/01", "/foo/-", "/nope", "/foo/0/x"])
def test_pointers_that_do_not_resolve_are_absent(pointer: str) -> None:
    assert resolve(RFC6901_DOC, parse_pointer(pointer)) is not RFC6901_DOC
    mapping = FieldMapping.from_config(
        {
            "name": "t",
            "fields": {"time": "/t", "user": pointer},
            "constants": {"action": "token.used"},
        }
    )
    out = mapping.normalize({"t": "2026-11-23T08:00:00Z", **RFC6901_DOC}, tenant="acme")
    assert out is not None and "user" not in out


BASE: dict[str, Any] = {
    "name": "t",
    "fields": {"time": "/t"},
    "constants": {"action": "token.used"},
}


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"colour": "blue"}, "colour"),
        ({"name": "Bad Name"}, "name"),
        ({"name": 5}, "name"),
        ({"fields": ["time"]}, "fields"),
        ({"fields": {"time": "/t", "usr": "/u"}}, "fields.usr"),
        ({"fields": {"time": "/t", "token.value": "/v"}}, "fields.token.value"),
        ({"fields": {"time": "/t", "user": "u"}}, "fields.user"),
        ({"fields": {"time": "/t", "user": "/a~2"}}, "fields.user"),
        ({"fields": {"time": "/t", "user": 5}}, "fields.user"),
        ({"fields": {"user": "/u"}}, "fields.time"),
        (
            {
                "fields": {"time": "/t", "tenant": "/o"},
                "constants": {"tenant": "x", "action": "token.used"},
            },
            "fields.tenant",
        ),
        ({"constants": {}}, "action_pointer"),
        ({"constants": {"action": "token.stolen"}}, "constants.action"),
        ({"constants": {"action": "token.used", "source.asn": "x"}}, "constants.source.asn"),
        ({"constants": {"action": "token.used", "user": 5}}, "constants.user"),
        ({"constants": {"action": "token.used", "attributes.k": None}}, "constants.attributes.k"),
        ({"constants": {"action": "token.used", "nope": "x"}}, "constants.nope"),
        ({"constants": {}, "action_pointer": "/k"}, "action_map"),
        (
            {"constants": {}, "action_pointer": "/k", "action_map": {"x": "token.stolen"}},
            "action_map.x",
        ),
        ({"action_pointer": "/k", "action_map": {"x": "token.used"}}, "action_pointer"),
        ({"action_map": {"x": "token.used"}}, "action_map"),
        ({"outcome_pointer": "/s"}, "outcome_map"),
        ({"outcome_pointer": "/s", "outcome_map": {"ok": "fine"}}, "outcome_map.ok"),
        ({"outcome_map": {"ok": "success"}}, "outcome_map"),
        ({"time_format": "epoch_us"}, "time_format"),
        ({"match": ["/x"]}, "match"),
        ({"match": {"x": 1}}, "match.x"),
        ({"keep_original": "yes"}, "keep_original"),
    ],
)
def test_config_errors_name_the_bad_key(patch: dict[str, Any], key: str) -> None:
    with pytest.raises(MappingConfigError) as info:
        FieldMapping.from_config({**BASE, **patch})
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_missing_required_keys_are_named() -> None:
    for key in ("name", "fields"):
        with pytest.raises(MappingConfigError) as info:
            FieldMapping.from_config({k: v for k, v in BASE.items() if k != key})
        assert info.value.key == key


def test_the_gateway_example_config_is_valid_and_round_trips() -> None:
    config = load("mapping")["config"]
    again = FieldMapping.from_config(config)
    record = load("mapping")["cases"][0]["record"]
    assert again.normalize(record, tenant=None) == GATEWAY.normalize(record, tenant=None)


@pytest.mark.parametrize(
    ("fmt", "value", "seconds"),
    [
        ("rfc3339", "2026-11-23T08:00:00Z", None),
        ("epoch_s", 1795420800, 1795420800.0),
        ("epoch_ms", 1795420800123, 1795420800.123),
    ],
)
def test_time_formats(fmt: str, value: Any, seconds: float | None) -> None:
    mapping = FieldMapping.from_config({**BASE, "time_format": fmt})
    out = mapping.normalize({"t": value}, tenant="acme")
    assert out is not None
    assert out["time"] == (value if seconds is None else seconds)


@pytest.mark.parametrize(
    ("fmt", "value", "reason"),
    [
        ("rfc3339", 1795420800, "time: expected an RFC 3339 string, got int"),
        ("epoch_s", "1795420800", "time: expected a number (epoch_s), got str"),
        ("epoch_ms", True, "time: expected a number (epoch_ms), got bool"),
        ("epoch_s", -5, "time: epoch_s value out of range"),
    ],
)
def test_time_of_the_wrong_kind_is_refused(fmt: str, value: Any, reason: str) -> None:
    mapping = FieldMapping.from_config({**BASE, "time_format": fmt})
    with pytest.raises(NormalizeError) as info:
        mapping.normalize({"t": value}, tenant="acme")
    assert info.value.reason == reason


def test_unmapped_action_is_rejected_unless_ignoring_is_configured() -> None:
    config = {**BASE, "constants": {}, "action_pointer": "/k", "action_map": {"call": "token.used"}}
    strict = FieldMapping.from_config(config)
    with pytest.raises(NormalizeError, match="action: 'other' at '/k' is not in action_map"):
        strict.normalize({"t": "2026-11-23T08:00:00Z", "k": "other"}, tenant="acme")
    with pytest.raises(NormalizeError, match="action: nothing at '/k'"):
        strict.normalize({"t": "2026-11-23T08:00:00Z"}, tenant="acme")
    lenient = FieldMapping.from_config({**config, "ignore_unmapped_actions": True})
    assert lenient.normalize({"t": "2026-11-23T08:00:00Z", "k": "other"}, tenant="acme") is None


def test_scalar_fields_refuse_objects_and_numbers_become_strings() -> None:
    mapping = FieldMapping.from_config({**BASE, "fields": {"time": "/t", "user": "/u"}})
    out = mapping.normalize({"t": "2026-11-23T08:00:00Z", "u": 12345}, tenant="acme")
    assert out is not None and out["user"] == "12345"
    with pytest.raises(NormalizeError, match="user: expected a string, got dict"):
        mapping.normalize({"t": "2026-11-23T08:00:00Z", "u": {"id": 1}}, tenant="acme")


def test_keep_original_false_keeps_only_what_was_mapped() -> None:
    mapping = FieldMapping.from_config({**BASE, "keep_original": False})
    out = mapping.normalize({"t": "2026-11-23T08:00:00Z", "secret": "x"}, tenant="acme")
    assert out is not None and out["attributes"] == {"vendor": "t"}


def test_a_mapped_record_validates_through_normalize_batch() -> None:
    from ingest.normalizers import normalize_batch

    record = load("mapping")["cases"][0]["record"]
    batch = normalize_batch(
        [record, {"source": "edge-gateway"}], normalizer=GATEWAY, hasher=HASHER, tenant=None
    )
    assert len(batch.events) == 1
    assert batch.rejected[0].index == 1
    assert batch.rejected[0].reason == "gateway: time: nothing at '/ts'"
