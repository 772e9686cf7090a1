"""Request-scoped access to the services built at start (no module-level singletons)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from tokenwarden.pipeline import EmbeddedPipeline
from tokenwarden.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_pipeline(request: Request) -> EmbeddedPipeline:
    pipeline: EmbeddedPipeline = request.app.state.pipeline
    return pipeline


def get_conn(services: Annotated[Services, Depends(get_services)]) -> Iterator[sa.Connection]:
    with services.db.connect() as conn:
        yield conn


ServicesDep = Annotated[Services, Depends(get_services)]
PipelineDep = Annotated[EmbeddedPipeline, Depends(get_pipeline)]
ConnDep = Annotated[sa.Connection, Depends(get_conn)]
