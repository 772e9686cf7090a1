"""Partitioning: keys, the partitioner, and which detectors run where."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner as AioPartitioner
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from detectors import DETECTORS, Engine, RefreshReuseDetector, build_detectors
from ingest import AuditEvent
from tokenwarden.stream.keys import (
    FAMILY_ACTIONS,
    FAMILY_DETECTORS,
    Partitioner,
    family_key,
    partition_of,
    principal_key,
    wants_family_stage,
)
from tokenwarden.stream.worker import split_engine

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def event(**fields: Any) -> AuditEvent:
    data: dict[str, Any] = {"time": T0.isoformat(), "tenant": "acme", "action": "token.used"}
    data.update(fields)
    return AuditEvent.model_validate(data)


def test_principal_key_is_the_user_else_agent_client_tenant() -> None:
    assert principal_key(event(user="jane", agent="a", client_id="c")) == "acme/u/jane"
    assert principal_key(event(agent="a", client_id="c")) == "acme/a/a"
    assert principal_key(event(client_id="c")) == "acme/c/c"
    assert principal_key(event()) == "acme/-"


def test_family_key_is_the_family_else_the_principal() -> None:
    named = event(user="jane", token={"id": "rt2", "parent_id": "rt1", "family_id": "f1"})
    assert family_key(named) == "acme/f/f1"
    unnamed = event(user="jane", token={"id": "rt2", "parent_id": "rt1"})
    assert family_key(unnamed) == "acme/u/jane"


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_partitioner_is_kafkas_default(key: str, partitions: int) -> None:
    """The same partition as aiokafka's and kafka-python's default partitioners (murmur2,
    as the Java client), so producers that key records themselves agree with us."""
    parts = list(range(partitions))
    expected = AioPartitioner()(key.encode(), parts, parts)
    assert partition_of(key, partitions) == expected
    assert (kafka_python_murmur2(key.encode()) & 0x7FFFFFFF) % partitions == expected
    assert Partitioner(partitions)(key) == expected


def test_partitioner_matches_the_java_clients_murmur2() -> None:
    """Reference values of ``org.apache.kafka.common.utils.Utils.murmur2``."""
    java = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
    for key, value in java.items():
        assert kafka_python_murmur2(key.encode()) & 0xFFFFFFFF == value & 0xFFFFFFFF
        assert partition_of(key, 1000) == (value & 0x7FFFFFFF) % 1000


def test_group_keeps_order_and_first_key() -> None:
    p = Partitioner(3)
    items = [f"k{i % 5}" for i in range(20)]
    groups = p.group(items, lambda k: k)
    assert sorted(i for _, g in groups.values() for i in g) == sorted(items)
    for partition, (first, group) in groups.items():
        assert p(first) == partition
        assert all(p(k) == partition for k in group)
        assert group == [k for k in items if p(k) == partition]


def test_split_engine_runs_refresh_reuse_alone_in_the_family_stage() -> None:
    engine = Engine(build_detectors())
    principal, family = split_engine(engine)
    assert {d.name for d in family.detectors} == set(FAMILY_DETECTORS) == {"refresh_reuse"}
    assert {d.name for d in principal.detectors} == set(DETECTORS) - FAMILY_DETECTORS
    assert principal.config == family.config == engine.config


ACTIONS = [
    "token.issued",
    "token.used",
    "token.revoked",
    "token.introspected",
    "auth.succeeded",
    "session.started",
    "session.ended",
    "ssf.session_revoked",
]


@pytest.mark.parametrize("action", ACTIONS)
def test_refresh_reuse_ignores_what_the_family_stage_is_not_sent(action: str) -> None:
    """The family stage only gets ``FAMILY_ACTIONS``; the detector must need nothing else
    (if it starts to, this fails and ``FAMILY_ACTIONS`` must grow)."""
    assert action not in FAMILY_ACTIONS
    detector = RefreshReuseDetector()
    state: dict[str, Any] = {}
    for i in range(3):
        e = event(
            action=action,
            user="jane",
            time=(T0 + timedelta(seconds=i)).isoformat(),
            token={
                "id": f"rt{i + 1}",
                "parent_id": f"rt{i}",
                "family_id": "f",
                "type": "refresh_token",
            },
        )
        assert detector.detect(e, state, T0) == []
    assert state == {}


def test_wants_family_stage() -> None:
    tok = {"id": "rt2", "parent_id": "rt1", "family_id": "f", "type": "refresh_token"}
    assert wants_family_stage(event(action="token.refreshed", token=tok))
    assert wants_family_stage(event(action="auth.failed", token=tok))
    assert not wants_family_stage(event(action="token.refreshed"))
    assert not wants_family_stage(event(action="token.used", token=tok))
