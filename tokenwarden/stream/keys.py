"""Partitioning: which Kafka partition an event's state lives in.

DESIGN.md, "Entity key and state": one key's state lives in exactly one partition. Two keys
are used, one per topic:

* ``tokenwarden.audit`` is keyed by the **principal**: ``<tenant>/u/<user>`` (else the
  agent, else the client, else the tenant alone). Every state key of the detectors that run
  there is the user's or finer, so it is partition-local and exact: the usage state per
  ``(tenant, user, agent, audience)`` (``u/``) and per agent for a user (``bu/``), the Engine's
  entity risk (``eng/``), the user's SSF risk and session context (``risk/``, ``sctx/``),
  and the per-family records of the usage detectors (``fam/``: a family is one grant to one
  user).
  The agent-population records (``volp/``, ``sdp/``: an agent's habits across its users)
  are the exception: each partition learns them from the users it holds (a cold-start
  fallback only; with many users per partition they converge on the same profile).
* ``tokenwarden.audit.by-family`` (the repartition) is keyed by the **token family**:
  ``<tenant>/f/<family_id>``. The ``refresh_reuse`` state (``rr/``, ``rrt/``) is per family
  and may be reported by events that name no user. A refresh event that names no family
  goes by its principal instead, where the detector's own token → family index finds the
  family (a source must name families always or never; every built-in normalizer names
  them).

Grouping a micro-batch by partition uses the topic's own partitioner — Kafka's default,
murmur2 of the key bytes, as aiokafka, kafka-python and the Java client compute it — so a
producer that keys records itself agrees with us, and co-partitioned Tables stay right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from aiokafka.partitioner import murmur2

from ingest import AuditEvent

T = TypeVar("T")

#: The actions the family stage needs: the ``refresh_reuse`` detector looks only at
#: ``token.refreshed`` and failed refreshes (``auth.failed``) of a token
#: (``detectors/refresh_reuse.py``; ``tests/stream/test_keys.py`` checks it ignores the rest).
FAMILY_ACTIONS = frozenset({"token.refreshed", "auth.failed"})
#: Detectors whose state is per token family and that run in the family stage.
FAMILY_DETECTORS = frozenset({"refresh_reuse"})


def principal_key(event: AuditEvent) -> str:
    """The audit topic's key: the user the event acts for (or agent, client, tenant)."""
    if event.user:
        return f"{event.tenant}/u/{event.user}"
    if event.agent:
        return f"{event.tenant}/a/{event.agent}"
    if event.client_id:
        return f"{event.tenant}/c/{event.client_id}"
    return f"{event.tenant}/-"


def family_key(event: AuditEvent) -> str:
    """The family topic's key: the token family, else the principal (module docstring)."""
    if event.token is not None and event.token.family_id:
        return f"{event.tenant}/f/{event.token.family_id}"
    return principal_key(event)


def wants_family_stage(event: AuditEvent) -> bool:
    return event.token is not None and event.action in FAMILY_ACTIONS


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (murmur2, positive, modulo)."""
    return (int(murmur2(key.encode())) & 0x7FFFFFFF) % partitions


class Partitioner:
    """``partition_of`` with a bounded cache (keys repeat: the same users all day)."""

    def __init__(self, partitions: int, *, cache: int = 100_000) -> None:
        self.partitions = partitions
        self._cache: dict[str, int] = {}
        self._limit = cache

    def __call__(self, key: str) -> int:
        p = self._cache.get(key)
        if p is None:
            p = partition_of(key, self.partitions)
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[key] = p
        return p

    def group(self, items: Iterable[T], key: Callable[[T], str]) -> dict[int, tuple[str, list[T]]]:
        """Items by partition, in their order, each group with the first item's key (a key
        that maps to that partition, for the record's key)."""
        out: dict[int, tuple[str, list[T]]] = {}
        for item in items:
            k = key(item)
            p = self(k)
            group = out.get(p)
            if group is None:
                out[p] = (k, [item])
            else:
                group[1].append(item)
        return out
