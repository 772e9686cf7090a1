"""The last events of each usage entity, in memory, for the admin API's entity page.

Audit events are not stored (only what they teach: token facts, detector state,
detections), so the entity page's timeline and observed-rate plot come from here: up to
``per_entity`` events for each of the ``max_entities`` most recently active entities
(``tenant/user/agent/audience``, the usage detectors' entity key), each marked
``anomalous`` when a detection of its batch names it. Fed by the embedded pipeline after
each batch; empty in the Kafka runner's API process (the workers see the events) and after
a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from detectors import Detection
from detectors.features import agent_key
from ingest import AuditEvent


def entity_of(event: AuditEvent) -> str:
    """The usage entity key of an event (``detectors.features.Observation.entity``)."""
    return f"{event.tenant}/{event.user or '-'}/{agent_key(event)}/{event.audience or '-'}"


def _summary(event: AuditEvent, anomalous: bool) -> dict[str, Any]:
    src = event.source
    tok = event.token
    return {
        "id": event.id,
        "time": event.time.isoformat(),
        "action": event.action,
        "scopes": list(event.scopes or ()),
        "destination": event.destination,
        "outcome": event.outcome,
        "source": None
        if src is None
        else {"ip": src.ip, "asn": src.asn, "user_agent": src.user_agent},
        "token": None
        if tok is None
        else {
            "id": tok.id,
            "parent_id": tok.parent_id,
            "family_id": tok.family_id,
            "type": tok.type,
        },
        "anomalous": anomalous,
    }


class RecentEvents:
    """Bounded per-entity event log; thread-safe (the pipeline adds on the event loop, the
    API reads from worker threads)."""

    def __init__(self, *, per_entity: int = 200, max_entities: int = 10_000) -> None:
        self.per_entity = per_entity
        self.max_entities = max_entities
        self._lock = threading.Lock()
        self._by_entity: OrderedDict[str, deque[tuple[datetime, dict[str, Any]]]] = OrderedDict()

    def add(self, events: Sequence[AuditEvent], detections: Sequence[Detection]) -> None:
        flagged = {i for d in detections for i in d.event_ids}
        with self._lock:
            for event in events:
                key = entity_of(event)
                log = self._by_entity.get(key)
                if log is None:
                    log = self._by_entity[key] = deque(maxlen=self.per_entity)
                    while len(self._by_entity) > self.max_entities:
                        self._by_entity.popitem(last=False)
                else:
                    self._by_entity.move_to_end(key)
                log.append((event.time, _summary(event, event.id in flagged)))

    def events(self, entity: str) -> list[tuple[datetime, dict[str, Any]]]:
        """The entity's recent events, oldest first."""
        with self._lock:
            log = self._by_entity.get(entity)
            return list(log) if log is not None else []

    def entities(self, *, prefix: str = "") -> list[str]:
        with self._lock:
            return [k for k in self._by_entity if k.startswith(prefix)]


__all__ = ["RecentEvents", "entity_of"]
