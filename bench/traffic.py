"""Synthetic agent traffic for benchmarks and replay tests (not the labelled simulator).

``families`` token families, each an agent working for one user: ``uses`` API calls per
access token and a refresh-token rotation every few minutes; ``replays`` families get
one stolen refresh token replayed from another network at the end.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def events(
    n: int, *, families: int = 1000, uses: int = 8, replays: int = 10, seed: int = 7
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    gen = [0] * families
    emitted = 0
    t = T0
    while emitted < n - replays:
        f = rng.randrange(families)
        t += timedelta(milliseconds=rng.randint(1, 40))
        base = {
            "time": t.isoformat(),
            "tenant": f"t{f % 7}",
            "user": f"user{f % 311}@example.com",
            "agent": f"agent-{f % 13}",
            "client_id": f"client-{f % 13}",
            "audience": f"https://api{f % 5}.example",
            "source": {"ip": f"10.{f % 200}.0.{f % 250}", "asn": 64500 + f % 50},
        }
        if rng.random() < 1 / (uses + 1):
            g = gen[f]
            gen[f] = g + 1
            yield {
                **base,
                "id": f"e{emitted}",
                "action": "token.refreshed",
                "token": {
                    "parent_id": f"f{f}-rt{g}",
                    "id": f"f{f}-rt{g + 1}",
                    "family_id": f"fam-{f}",
                    "type": "refresh_token",
                },
            }
        else:
            yield {
                **base,
                "id": f"e{emitted}",
                "action": "token.used",
                "scopes": ["read"],
                "token": {
                    "id": f"f{f}-at{gen[f]}",
                    "family_id": f"fam-{f}",
                    "type": "access_token",
                },
                "destination": f"api{f % 5}.example",
            }
        emitted += 1
    stolen = [f for f in range(families) if gen[f] >= 2][:replays]
    for f in stolen:
        t += timedelta(seconds=30)
        yield {
            "id": f"e{emitted}",
            "time": t.isoformat(),
            "tenant": f"t{f % 7}",
            "action": "token.refreshed",
            "user": f"user{f % 311}@example.com",
            "client_id": f"client-{f % 13}",
            "source": {"ip": "198.51.100.9", "asn": 64999},
            "token": {
                "parent_id": f"f{f}-rt0",
                "id": f"stolen-{f}",
                "family_id": f"fam-{f}",
                "type": "refresh_token",
            },
        }
        emitted += 1
