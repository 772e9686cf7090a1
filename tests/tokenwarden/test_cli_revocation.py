"""The executor's command line: revoke, kill, release, switches, orders, alerts, audit."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from revocation.tables import audit_log
from tests.revocation.receiver import receiving
from tokenwarden.cli import app
from tokenwarden.db import make_engine

SECRET = "cli-webhook-secret-0123456789"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tw.toml"
    path.write_text(f'database_url = "sqlite:///{tmp_path / "tw.db"}"\n')
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_revoke_a_family(config: Path) -> None:
    code, out = cli(
        "revoke", "family", "fam-1", "--reason", "leaked", "--tenant", "acme", "-c", str(config)
    )
    assert code == 0, out
    assert re.search(r"order ord-\w+  revoke family fam-1 \(tenant acme\)", out)
    assert "status done" in out
    assert f"by cli:{getpass.getuser()}: leaked" in out
    assert "-> store" in out and "delivered" in out


def test_revoke_needs_a_tenant_and_a_reason(config: Path) -> None:
    code, out = cli("revoke", "family", "fam-1", "--reason", "x", "-c", str(config))
    assert code == 2
    assert "--tenant" in out
    code, out = cli("revoke", "family", "fam-1", "--tenant", "acme", "-c", str(config))
    assert code == 2
    assert "--reason" in out
    code, out = cli("revoke", "bogus", "x", "--reason", "x", "--tenant", "a", "-c", str(config))
    assert (code, "unknown target kind 'bogus'" in out) == (2, True)


def test_kill_list_and_release(config: Path) -> None:
    code, out = cli(
        "kill",
        "user",
        "jane@acme.example",
        "--reason",
        "takeover",
        "--tenant",
        "acme",
        "--actor",
        "cli:oncall",
        "-c",
        str(config),
    )
    assert code == 0, out
    ks = re.search(r"kill switch (ks-\w+)", out)
    assert ks is not None
    code, out = cli("switches", "-c", str(config))
    assert ks.group(1) in out
    assert "acme user jane@acme.example  active  (takeover)" in out
    code, out = cli(
        "kill", "family", "fam-1", "--reason", "r", "--tenant", "acme", "-c", str(config)
    )
    assert code == 2
    assert "cannot kill_switch a family" in out

    code, out = cli("release", ks.group(1), "--reason", " ", "-c", str(config))
    assert code == 1
    assert "a reason is required" in out
    code, out = cli("release", ks.group(1), "--reason", "owner verified", "-c", str(config))
    assert code == 0, out
    assert "release user jane@acme.example" in out
    code, out = cli("release", ks.group(1), "--reason", "again", "-c", str(config))
    assert code == 1
    assert "was released at" in out
    code, out = cli("switches", "-c", str(config))
    assert out.strip() == "no kill switches"
    code, out = cli("switches", "--all", "-c", str(config))
    assert "released" in out


def test_a_tenant_kill_needs_no_tenant_option(config: Path) -> None:
    code, out = cli("kill", "tenant", "acme", "--reason", "breach", "-c", str(config))
    assert code == 0, out
    assert "kill_switch tenant acme (tenant acme)" in out


def test_alerts_list_and_ack(config: Path) -> None:
    cli("kill", "agent", "crm", "--reason", "rogue", "--tenant", "acme", "-c", str(config))
    code, out = cli("alerts", "list", "-c", str(config))
    found = re.search(r"(al-\w+)  acme/agent/crm  open  x1", out)
    assert found is not None, out
    code, out = cli(
        "alerts", "ack", found.group(1), "--note", "mine", "--actor", "cli:bob", "-c", str(config)
    )
    assert code == 0, out
    assert "acknowledged by cli:bob" in out
    code, out = cli("alerts", "list", "-c", str(config))
    assert out.strip() == "no alerts"
    code, out = cli("alerts", "ack", "al-nope", "-c", str(config))
    assert code == 1


def test_audit_verify_names_the_first_broken_link(config: Path, tmp_path: Path) -> None:
    cli("revoke", "family", "fam-1", "--reason", "leaked", "--tenant", "acme", "-c", str(config))
    cli("kill", "agent", "crm", "--reason", "rogue", "--tenant", "acme", "-c", str(config))
    code, out = cli("audit", "verify", "-c", str(config))
    assert code == 0, out
    assert re.match(r"ok: \d+ rows, chain head \d+ [0-9a-f]{64}", out)
    code, out = cli("audit", "tail", "-c", str(config))
    assert "kill_switch.thrown" in out

    engine = make_engine(f"sqlite:///{tmp_path / 'tw.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    engine.dispose()
    code, out = cli("audit", "verify", "-c", str(config))
    assert code == 1
    assert "BROKEN at row 3: row 3" in out
    assert "was edited" in out


def test_orders_show_and_summary(config: Path) -> None:
    code, out = cli(
        "revoke", "user", "jane", "--reason", "x", "--tenant", "acme", "-c", str(config)
    )
    order_id = re.search(r"order (ord-\w+)", out)
    assert order_id is not None
    code, out = cli("orders", "show", order_id.group(1), "-c", str(config))
    assert (code, "revoke user jane" in out) == (0, True)
    code, out = cli("orders", "show", "ord-nope", "-c", str(config))
    assert code == 1
    code, out = cli("orders", "summary", "--enforce", "-c", str(config))
    assert out.startswith("1 orders revoked 0 families (0 tokens), 0 kill switches")
    code, out = cli("orders", "summary", "-c", str(config))
    assert out.startswith("0 orders would have revoked 0 families")


def test_the_cli_delivers_to_the_configured_adapters_itself(config: Path, tmp_path: Path) -> None:
    with receiving(SECRET.encode()) as rx:
        config.write_text(
            config.read_text()
            + f'[[revocation.adapters]]\ntype = "webhook"\nurl = "{rx.url}"\nsecret = "{SECRET}"\n'
        )
        code, out = cli(
            "revoke", "family", "fam-7", "--reason", "leaked", "--tenant", "acme", "-c", str(config)
        )
    assert code == 0, out
    assert re.search(r"-> webhook\s+delivered\s+attempts 1", out), out
    assert len(rx.effects) == 1
    assert "status done" in out
