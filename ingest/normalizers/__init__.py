"""Normalizers: real log formats -> the AuditEvent wire schema (issue 6).

Built-in formats: ``native`` (our wire schema), ``okta`` (System Log), ``auth0`` (tenant
logs), ``keycloak`` (event and admin event representations), ``oidc-provider`` (node
oidc-provider events); plus declarative ``FieldMapping`` formats from the configuration.
"""

from ingest.normalizers.auth0 import Auth0Normalizer
from ingest.normalizers.base import NormalizedBatch, NormalizeError, Normalizer, normalize_batch
from ingest.normalizers.detect import chooser, detect_format
from ingest.normalizers.keycloak import KeycloakNormalizer
from ingest.normalizers.mapping import FieldMapping, MappingConfigError, parse_pointer
from ingest.normalizers.native import NativeNormalizer
from ingest.normalizers.oidc_provider import OidcProviderNormalizer
from ingest.normalizers.okta import PROPOSED_CONTEXT_ACTIONS, OktaNormalizer
from ingest.normalizers.registry import (
    NORMALIZERS,
    UnknownFormat,
    build_registry,
    get_normalizer,
)

__all__ = [
    "NORMALIZERS",
    "PROPOSED_CONTEXT_ACTIONS",
    "Auth0Normalizer",
    "FieldMapping",
    "KeycloakNormalizer",
    "MappingConfigError",
    "NativeNormalizer",
    "NormalizeError",
    "NormalizedBatch",
    "Normalizer",
    "OidcProviderNormalizer",
    "OktaNormalizer",
    "UnknownFormat",
    "build_registry",
    "chooser",
    "detect_format",
    "get_normalizer",
    "normalize_batch",
    "parse_pointer",
]
