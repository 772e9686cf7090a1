"""The normalizer registry: format name (``?format=<name>``) -> normalizer instance.

``NORMALIZERS`` holds the built-in formats and is never modified at run time (shared by
every worker); ``build_registry`` returns a new registry with configured ``FieldMapping``
formats added, refusing a name that is already taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ingest.normalizers.auth0 import Auth0Normalizer
from ingest.normalizers.base import Normalizer
from ingest.normalizers.keycloak import KeycloakNormalizer
from ingest.normalizers.native import NativeNormalizer
from ingest.normalizers.oidc_provider import OidcProviderNormalizer
from ingest.normalizers.okta import OktaNormalizer

_BUILTIN: tuple[Normalizer, ...] = (
    NativeNormalizer(),
    OktaNormalizer(),
    Auth0Normalizer(),
    KeycloakNormalizer(),
    OidcProviderNormalizer(),
)

#: Built-in formats by name (read-only).
NORMALIZERS: Mapping[str, Normalizer] = MappingProxyType({n.name: n for n in _BUILTIN})


class UnknownFormat(KeyError):
    """A format name no normalizer is registered under."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(known)

    def __str__(self) -> str:
        return f"unknown format {self.name!r}; known formats: {', '.join(self.known)}"


def build_registry(
    extra: Iterable[Normalizer] = (), *, base: Mapping[str, Normalizer] = NORMALIZERS
) -> Mapping[str, Normalizer]:
    """``base`` plus ``extra`` (e.g. ``FieldMapping``s from the config), read-only.

    Raises ``ValueError`` when an extra normalizer reuses a taken name.
    """
    registry = dict(base)
    for normalizer in extra:
        if normalizer.name in registry:
            raise ValueError(f"format name {normalizer.name!r} is already registered")
        registry[normalizer.name] = normalizer
    return MappingProxyType(registry)


def get_normalizer(name: str, registry: Mapping[str, Normalizer] = NORMALIZERS) -> Normalizer:
    """The normalizer for ``name``; ``UnknownFormat`` lists the known names."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownFormat(name, registry) from None
