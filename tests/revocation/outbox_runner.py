"""A separate process for the crash tests: records orders through the real pipeline stages,
or runs the real dispatcher — and can be SIGKILLed at any point.

    python -m tests.revocation.outbox_runner record DB_URL --webhook URL --secret S
        [--redis-prefix P] [--crash-after-commit]
    python -m tests.revocation.outbox_runner deliver DB_URL --webhook URL --secret S
        [--redis-prefix P] [--lease SECONDS] [--deadline SECONDS]

``record`` feeds a stolen-refresh-token replay through ``Stages.process``: the engine
detects the reuse, the policy orders the family revoked, and the order commits with its
outbox entries (store, webhook, redis). With ``--crash-after-commit`` the process kills
itself with SIGKILL right after that commit, before any delivery — the store's included.

``deliver`` runs dispatcher passes until no entry is left undelivered (or the deadline),
then prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from detectors import Engine, build_detectors
from ingest import AuditEvent
from revocation import Policy
from revocation.store import outbox
from revocation.tables import outbox as outbox_table
from tokenwarden.db import make_engine
from tokenwarden.pipeline import Stages
from tokenwarden.revocation_runtime import build_dispatcher, build_routing
from tokenwarden.revocation_settings import RevocationSettings
from tokenwarden.state import TrackedState

REDIS_URL = "redis://127.0.0.1:6379/0"


def settings(args: argparse.Namespace) -> RevocationSettings:
    adapters: list[dict[str, Any]] = [
        {"type": "webhook", "url": args.webhook, "secret": args.secret, "timeout_seconds": 60}
    ]
    if args.redis_prefix:
        adapters.append({"type": "redis", "url": REDIS_URL, "prefix": args.redis_prefix})
    return RevocationSettings.model_validate(
        {
            "adapters": adapters,
            "delivery": {
                "store_grace_seconds": 0,
                "lease_seconds": args.lease,
                "timeout_seconds": min(60.0, args.lease / 2),
                "backoff_base_seconds": 0.05,
            },
        }
    )


def replay_events() -> list[AuditEvent]:
    base = int(time.time()) - 1000

    def refreshed(parent: str, child: str, at: int, asn: int) -> AuditEvent:
        return AuditEvent.model_validate(
            {
                "id": f"evt-{parent}-{child}",
                "time": base + at,
                "tenant": "acme",
                "action": "token.refreshed",
                "user": "jane@acme.example",
                "agent": "crm-followup",
                "client_id": "agent-crm",
                "token": {
                    "parent_id": parent,
                    "id": child,
                    "family_id": "fam-crash",
                    "type": "refresh_token",
                },
                "source": {"ip": "203.0.113.5", "asn": asn},
            }
        )

    return [
        refreshed("rt-0", "rt-1", 0, 64500),
        refreshed("rt-1", "rt-2", 600, 64500),
        refreshed("rt-1", "rt-x", 900, 64999),  # the thief replays rt-1 from elsewhere
    ]


def record(args: argparse.Namespace, db: sa.Engine) -> None:
    stages = Stages(
        db=db,
        engine=Engine(build_detectors(["refresh_reuse"])),
        policy=Policy.default(),
        state=TrackedState(),
        routing=build_routing(settings(args)),
    )
    if args.crash_after_commit:
        stages.on_orders = lambda handoff, orders, scopes: os.kill(os.getpid(), signal.SIGKILL)
    events = replay_events()
    result = stages.process(events, now=datetime.now(UTC))
    print(orjson.dumps({"orders": [o.id for o in result.orders]}).decode(), flush=True)


def undelivered(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox_table)
                .where(outbox_table.c.state != outbox.DELIVERED)
            ).scalar_one()
        )


async def deliver(args: argparse.Namespace, db: sa.Engine) -> dict[str, Any]:
    summary: dict[str, Any] = {"delivered": [], "failed": {}}
    async with httpx.AsyncClient() as http:
        dispatcher = build_dispatcher(settings(args), db=db, http=http)
        deadline = time.monotonic() + args.deadline
        try:
            while time.monotonic() < deadline and undelivered(db):
                report = await dispatcher.run_once()
                summary["delivered"] += report.delivered
                summary["failed"].update(report.failed)
                if not report.claimed:
                    await asyncio.sleep(0.05)  # waiting for a lease or a retry to fall due
        finally:
            await dispatcher.aclose()
    summary["left"] = undelivered(db)
    return summary


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["record", "deliver"])
    p.add_argument("db")
    p.add_argument("--webhook", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--redis-prefix", default=None)
    p.add_argument("--crash-after-commit", action="store_true")
    p.add_argument("--lease", type=float, default=30.0)
    p.add_argument("--deadline", type=float, default=30.0)
    args = p.parse_args()
    db = make_engine(args.db)
    try:
        if args.mode == "record":
            record(args, db)
        else:
            print(orjson.dumps(asyncio.run(deliver(args, db))).decode(), flush=True)
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
