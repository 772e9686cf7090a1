"""Adapter settings: each adapter validates its own table with a small pydantic model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from revocation.delivery import AdapterConfigError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], name: str, config: Mapping[str, Any]) -> M:
    """``config`` validated as ``model``, or ``AdapterConfigError`` naming the adapter and
    each bad field."""
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(table)'}: {e['msg']}" for e in exc.errors()
        )
        raise AdapterConfigError(f"adapter {name!r}: {problems}") from None
