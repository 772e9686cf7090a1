"""Adapters load from the ``tokenwarden.adapters`` entry-point group: a deployment's own
adapter, installed as a distribution, is found, routed to and delivered through."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from revocation import Action, TargetKind, store
from revocation.adapters import BUILTIN, ENTRY_POINT_GROUP, load_plugins
from revocation.delivery import AdapterConfigError, AdapterPlugin
from revocation.routing import STORE
from tests.revocation.fakes import Clock, dispatcher
from tests.revocation.helpers import order
from tokenwarden.revocation_runtime import build_adapters, build_routing
from tokenwarden.revocation_settings import RevocationSettings

VAULT = """
from revocation.delivery import AdapterPlugin
from revocation.order import Action

DELIVERED = []


class VaultAdapter:
    def __init__(self, name, config, deps):
        self.name = name
        self.mount = config["mount"]

    async def deliver(self, delivery, *, now):
        DELIVERED.append((self.mount, delivery.order.target.value))
        return {"mount": self.mount}

    async def aclose(self):
        return None


PLUGIN = AdapterPlugin(
    type="vault",
    actions=frozenset({Action.REVOKE}),
    build=lambda name, config, deps: VaultAdapter(name, config, deps),
    description="revokes leases in a vault",
)
NOT_A_PLUGIN = object()
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution ``acme-vault`` installed on sys.path with one entry point."""
    (tmp_path / "acme_vault").mkdir()
    (tmp_path / "acme_vault" / "__init__.py").write_text(textwrap.dedent(VAULT))
    info = tmp_path / "acme_vault-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-vault\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nvault = acme_vault:PLUGIN\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    sys.modules.pop("acme_vault", None)


def test_every_builtin_is_a_plugin_of_its_own_name() -> None:
    plugins = load_plugins(found=[])
    assert set(plugins) == set(BUILTIN) == {"store", "redis", "oauth_revocation", "webhook"}
    for name, plugin in plugins.items():
        assert isinstance(plugin, AdapterPlugin)
        assert plugin.type == name
        assert plugin.description
    assert plugins[STORE].actions == frozenset(Action)
    assert Action.RELEASE not in plugins["oauth_revocation"].actions


def test_an_installed_distribution_adds_its_adapter(installed: Path, engine: sa.Engine) -> None:
    plugins = load_plugins()
    assert plugins["vault"].description == "revokes leases in a vault"
    settings = RevocationSettings.model_validate(
        {"adapters": [{"type": "vault", "name": "leases", "mount": "secret/agents"}]}
    )
    routing = build_routing(settings, plugins)
    o = order(TargetKind.FAMILY, "fam-1")
    kill = order(TargetKind.USER, "jane", action=Action.KILL_SWITCH)
    assert routing.destinations(o) == ["store", "leases"]
    assert routing.destinations(kill) == ["store"]  # the plugin only revokes

    clock = Clock()
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing)

    async def run() -> list[str]:
        async with httpx.AsyncClient() as http:
            adapters = build_adapters(settings, db=engine, http=http, plugins=plugins)
            report = await dispatcher(engine, clock, adapters["leases"]).run_once()
            return report.delivered

    assert asyncio.run(run()) == [f"{o.id}/leases"]
    import acme_vault  # type: ignore[import-not-found]

    assert acme_vault.DELIVERED == [("secret/agents", "fam-1")]


def test_an_entry_point_may_not_take_a_builtin_name() -> None:
    clash = EntryPoint(name="redis", value="acme_vault:PLUGIN", group=ENTRY_POINT_GROUP)
    with pytest.raises(AdapterConfigError, match="clashes with the built-in adapter"):
        load_plugins(found=[clash])
    same = EntryPoint(name="redis", value=BUILTIN["redis"], group=ENTRY_POINT_GROUP)
    assert "redis" in load_plugins(found=[same])  # tokenwarden's own declaration


def test_broken_entry_points_are_named(installed: Path) -> None:
    wrong = EntryPoint(name="vault", value="acme_vault:NOT_A_PLUGIN", group=ENTRY_POINT_GROUP)
    with pytest.raises(AdapterConfigError, match=r"'vault' \(acme_vault:NOT_A_PLUGIN\).*not a"):
        load_plugins(found=[wrong])
    renamed = EntryPoint(name="vault2", value="acme_vault:PLUGIN", group=ENTRY_POINT_GROUP)
    with pytest.raises(AdapterConfigError, match="declares adapter type 'vault'"):
        load_plugins(found=[renamed])
    missing = EntryPoint(name="gone", value="no_such_module:PLUGIN", group=ENTRY_POINT_GROUP)
    with pytest.raises(AdapterConfigError, match=r"'gone'.*failed to load: ModuleNotFoundError"):
        load_plugins(found=[missing])


def test_an_unknown_adapter_type_lists_the_installed_ones() -> None:
    settings = RevocationSettings.model_validate({"adapters": [{"type": "vault"}]})
    with pytest.raises(AdapterConfigError, match=r"unknown type 'vault'; installed types: oauth"):
        build_routing(settings, load_plugins(found=[]))


def test_settings_refuse_a_configured_store_and_repeated_names() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="always enabled"):
        RevocationSettings.model_validate({"adapters": [{"type": "store"}]})
    with pytest.raises(ValidationError, match=r"repeated: \['redis'\]"):
        RevocationSettings.model_validate({"adapters": [{"type": "redis"}, {"type": "redis"}]})
    with pytest.raises(ValidationError, match="lease_seconds must exceed"):
        RevocationSettings.model_validate({"delivery": {"lease_seconds": 5, "timeout_seconds": 10}})
