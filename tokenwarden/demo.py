"""``tokenwarden demo``: the embedded service catches a replayed refresh token.

It starts the real service in-process (uvicorn on a loopback port, a fresh SQLite file),
then plays a short story over HTTP: an agent works and rotates its refresh token normally,
races itself once (a benign concurrent refresh), and then its stolen refresh token is
replayed from another network. It prints what was detected, why, what was revoked and how
long it took.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from tokenwarden.app import create_app
from tokenwarden.auth.api_keys import IssuedKey
from tokenwarden.server import running
from tokenwarden.settings import Settings

TENANT = "acme"
USER = "jane@acme.example"
AGENT = "crm-followup"
CLIENT = "agent-crm"
API = "https://api.crm.example"
HOME = {"ip": "203.0.113.5", "asn": 64500, "user_agent": "crm-bot/1.4"}
THIEF = {"ip": "198.51.100.66", "asn": 64999, "user_agent": "python-requests/2.32"}


def _event(
    at: datetime,
    action: str,
    token: dict[str, Any],
    *,
    source: dict[str, Any] = HOME,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "time": at.isoformat().replace("+00:00", "Z"),
        "tenant": TENANT,
        "action": action,
        "user": USER,
        "agent": AGENT,
        "client_id": CLIENT,
        "audience": API,
        "token": {"family_id": "fam-demo", **token},
        "source": source,
        **extra,
    }


def story(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(normal work, the replay) — event times end at ``now``."""
    t = now - timedelta(minutes=45)
    normal: list[dict[str, Any]] = [
        _event(t, "token.issued", {"id": "rt-1", "type": "refresh_token"}, scopes=["leads:read"]),
    ]
    for i in range(1, 4):
        t += timedelta(minutes=12)
        for j in range(3):
            normal.append(
                _event(
                    t + timedelta(seconds=20 * j),
                    "token.used",
                    {"id": f"at-{i}-{j}", "type": "access_token"},
                    scopes=["leads:read"],
                    destination="api.crm.example",
                )
            )
        normal.append(
            _event(
                t + timedelta(minutes=1),
                "token.refreshed",
                {"parent_id": f"rt-{i}", "id": f"rt-{i + 1}", "type": "refresh_token"},
            )
        )
    # two workers of the agent refresh at the same moment: benign, not reuse
    race_at = t + timedelta(minutes=1, seconds=2)
    normal.append(
        _event(
            race_at,
            "token.refreshed",
            {"parent_id": "rt-3", "id": "rt-4b", "type": "refresh_token"},
        )
    )
    replay = [
        _event(
            now,
            "token.refreshed",
            {"parent_id": "rt-2", "id": "rt-x", "type": "refresh_token"},
            source=THIEF,
        )
    ]
    return normal, replay


def run_demo(console: Console | None = None) -> int:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="tokenwarden-demo-") as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'demo.db'}", log_level="warning")
        console.rule("[bold]tokenwarden demo[/bold] — a stolen refresh token is replayed")
        console.print(f"starting the embedded service (SQLite at {tmp}/demo.db) …")
        issued: list[IssuedKey] = []
        app = create_app(settings, on_admin_key=issued.append)
        with running(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            # a fresh database: the service made its first-start admin key and handed it here
            http.headers["Authorization"] = f"Bearer {issued[0].key}"
            console.print(f"service up at {base} (signed in with its first-start admin key)\n")
            normal, replay = story(datetime.now(UTC))

            console.print(
                f"[bold]1.[/bold] agent [cyan]{AGENT}[/cyan] works for {USER}: "
                f"{sum(e['action'] == 'token.used' for e in normal)} API calls, "
                f"{sum(e['action'] == 'token.refreshed' for e in normal) - 1} refresh-token "
                "rotations rt-1 → rt-2 → rt-3 → rt-4, and one benign race "
                "(two workers refresh rt-3 within 2 s from the same network)"
            )
            r = http.post("/v1/events", params={"wait": "true"}, json=normal)
            r.raise_for_status()
            console.print(
                f"   → {r.json()['accepted']} events accepted, "
                f"{r.json().get('detections', 0)} detections (the race is benign)\n"
            )

            console.print(
                "[bold]2.[/bold] an attacker who copied [yellow]rt-2[/yellow] from a log replays "
                f"it from {THIEF['ip']} (AS{THIEF['asn']})"
            )
            started = time.perf_counter()
            r = http.post("/v1/events", params={"wait": "true"}, json=replay)
            elapsed_ms = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            console.print(
                f"   → processed in [bold]{elapsed_ms:.1f} ms[/bold] "
                "(HTTP request to family revoked in the store)\n"
            )

            detections = http.get("/v1/detections", params={"tenant": TENANT}).json()["items"]
            orders = http.get("/v1/orders", params={"tenant": TENANT}).json()["items"]
            family = http.get("/v1/families/fam-demo", params={"tenant": TENANT}).json()
            if not detections or not orders:
                console.print("[red]no detection — the demo failed[/red]")
                return 1
            d = detections[0]
            o = orders[0]
            console.print(
                "[bold red]DETECTED[/bold red]",
                f"[bold]{d['detector']}[/bold]",
                f"({d['severity']}, score {d['score']})",
            )
            console.print(f"   why: {d['reason']}")
            console.print(f"   evidence events: {', '.join(d['event_ids'])}\n")
            console.print(
                "[bold red]REVOKED[/bold red]",
                f"{o['target']['kind']} [bold]{o['target']['value']}[/bold] "
                f"— order {o['id']} ({o['status']}, rule {o['rule']})",
            )
            tokens = family.get("tokens", [])
            table = Table("token", "type", "parent", "revoked at")
            for tok in tokens:
                table.add_row(
                    tok["token_id"],
                    str(tok.get("type") or ""),
                    str(tok.get("parent_id") or ""),
                    str(tok.get("revoked_at") or "—"),
                )
            console.print(table)

            console.print("\n[bold]3.[/bold] the gateway asks before letting the agent refresh:")
            for query in (
                {"tenant": TENANT, "token_id": "rt-4"},
                {"tenant": TENANT, "family_id": "fam-demo"},
                {"tenant": TENANT, "family_id": "fam-other"},
            ):
                ans = http.post("/v1/check", json=query).json()
                verdict = "[green]allow[/green]" if ans["allow"] else "[red]deny[/red]"
                console.print(f"   {query} → {verdict}: {ans['reason']}")
            console.print(f"\n{len(tokens)} tokens of the family revoked by one order.")
        console.rule("done")
    return 0
