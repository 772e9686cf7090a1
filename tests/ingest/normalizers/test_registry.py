"""Every built-in format is registered, documented against its vendor source, and the
package exports are complete."""

from __future__ import annotations

import inspect

import pytest

import ingest.normalizers as package
from ingest.normalizers import (
    NORMALIZERS,
    Normalizer,
    UnknownFormat,
    build_registry,
    get_normalizer,
)
from tests.ingest.normalizers.helpers import GATEWAY

BUILTIN = {"native", "okta", "auth0", "keycloak", "oidc-provider"}


def test_every_builtin_format_is_registered_under_its_name() -> None:
    assert set(NORMALIZERS) == BUILTIN
    for name, normalizer in NORMALIZERS.items():
        assert normalizer.name == name
        assert isinstance(normalizer, Normalizer)


@pytest.mark.parametrize("name", sorted(BUILTIN - {"native"}))
def test_each_vendor_module_cites_its_documentation(name: str) -> None:
    module = inspect.getmodule(type(NORMALIZERS[name]))
    assert module is not None and module.__doc__
    assert "https://" in module.__doc__
    assert "Tenant" in module.__doc__ or "tenant" in module.__doc__


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        NORMALIZERS["x"] = GATEWAY  # type: ignore[index]


def test_build_registry_adds_mappings_and_refuses_a_taken_name() -> None:
    registry = build_registry([GATEWAY])
    assert set(registry) == BUILTIN | {"gateway"}
    assert set(NORMALIZERS) == BUILTIN
    with pytest.raises(ValueError, match="'gateway' is already registered"):
        build_registry([GATEWAY], base=registry)


def test_get_normalizer_names_the_known_formats() -> None:
    assert get_normalizer("okta") is NORMALIZERS["okta"]
    with pytest.raises(UnknownFormat) as info:
        get_normalizer("splunk")
    assert str(info.value) == (
        "unknown format 'splunk'; known formats: auth0, keycloak, native, oidc-provider, okta"
    )


def test_exports_are_complete_and_resolvable() -> None:
    assert sorted(package.__all__) == sorted(set(package.__all__))
    for name in package.__all__:
        assert hasattr(package, name), name
    public = {
        name
        for module in (
            "auth0",
            "base",
            "detect",
            "keycloak",
            "mapping",
            "native",
            "okta",
            "oidc_provider",
            "registry",
        )
        for name, value in vars(getattr(package, module)).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "") == f"ingest.normalizers.{module}"
    }
    assert public - set(package.__all__) == {"resolve"}
