"""Adapters: where an order goes besides the decision to make it.

Each adapter type is an ``AdapterPlugin`` found by name in the entry-point group
``tokenwarden.adapters`` (``importlib.metadata``), so a deployment adds its own without
touching tokenwarden::

    # in the deployment's package
    [project.entry-points."tokenwarden.adapters"]
    vault = "acme_tokens.vault_adapter:PLUGIN"

where ``PLUGIN = AdapterPlugin(type="vault", actions=frozenset({Action.REVOKE}),
build=lambda name, config, deps: VaultAdapter(...))`` and ``VaultAdapter`` has a ``name``,
``async deliver(delivery, *, now)`` and ``async aclose()`` (``revocation.delivery.Adapter``).
Then ``[[revocation.adapters]] type = "vault"`` in the config enables it.

The built-in types (``store``, ``redis``, ``oauth_revocation``, ``webhook``) are declared in
that group by tokenwarden's own package metadata and are also known here directly, so they
load even from a source checkout that was never installed. An entry point may not reuse a
built-in name for something else.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from revocation.delivery import AdapterConfigError, AdapterPlugin

ENTRY_POINT_GROUP = "tokenwarden.adapters"

#: The built-in adapter types and their plugin objects (also declared as entry points).
BUILTIN: dict[str, str] = {
    "store": "revocation.adapters.store:PLUGIN",
    "redis": "revocation.adapters.redis_denylist:PLUGIN",
    "oauth_revocation": "revocation.adapters.oauth_revocation:PLUGIN",
    "webhook": "revocation.adapters.webhook:PLUGIN",
}


def _load_target(target: str) -> object:
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _checked(name: str, target: str, obj: object) -> AdapterPlugin:
    if not isinstance(obj, AdapterPlugin):
        raise AdapterConfigError(
            f"entry point {name!r} ({target}) in {ENTRY_POINT_GROUP} is a "
            f"{type(obj).__name__}, not a revocation.delivery.AdapterPlugin"
        )
    if obj.type != name:
        raise AdapterConfigError(
            f"entry point {name!r} ({target}) declares adapter type {obj.type!r}; "
            "the entry point's name and the plugin's type must agree"
        )
    return obj


def load_plugins(found: Iterable[EntryPoint] | None = None) -> dict[str, AdapterPlugin]:
    """Every adapter type: the built-ins and the ``tokenwarden.adapters`` entry points
    (``found`` replaces the installed ones, for tests)."""
    plugins = {
        name: _checked(name, target, _load_target(target)) for name, target in BUILTIN.items()
    }
    eps = list(entry_points(group=ENTRY_POINT_GROUP) if found is None else found)
    for ep in sorted(eps, key=lambda e: e.name):
        if ep.name in BUILTIN:
            if ep.value.replace(" ", "") != BUILTIN[ep.name]:
                raise AdapterConfigError(
                    f"entry point {ep.name!r} ({ep.value}) in {ENTRY_POINT_GROUP} clashes with "
                    f"the built-in adapter of that name ({BUILTIN[ep.name]})"
                )
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            raise AdapterConfigError(
                f"entry point {ep.name!r} ({ep.value}) in {ENTRY_POINT_GROUP} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        plugins[ep.name] = _checked(ep.name, ep.value, obj)
    return plugins


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "load_plugins"]
