"""``POST /v1/check``: may this token / family / agent / user still be used?"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from revocation import store
from tokenwarden.api.deps import ConnDep, ServicesDep

router = APIRouter(prefix="/v1", tags=["check"])


class CheckRequest(BaseModel):
    """Any combination of identifiers; every one given must be clear for ``allow``.

    ``token_id`` may be the raw token a gateway holds: it is replaced by its keyed hash
    before it is looked up (and never stored or logged).
    """

    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(default=None, max_length=128)
    token_id: str | None = Field(default=None, max_length=16384)
    family_id: str | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=512)
    agent: str | None = Field(default=None, max_length=512)
    client_id: str | None = Field(default=None, max_length=512)
    session_id: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _something(self) -> CheckRequest:
        if not any(
            (
                self.token_id,
                self.family_id,
                self.user,
                self.agent,
                self.client_id,
                self.session_id,
                self.tenant,
            )
        ):
            raise ValueError(
                "name at least one of token_id, family_id, user, agent, "
                "client_id, session_id, tenant"
            )
        return self


class CheckResponse(BaseModel):
    allow: bool
    reason: str
    order_id: str | None = None
    kill_switch_id: str | None = None


@router.post("/check", response_model=CheckResponse)
def check(body: CheckRequest, conn: ConnDep, services: ServicesDep) -> CheckResponse:
    """Allow or deny, with the reason and the order or kill switch behind a denial."""
    token_id = services.hasher.identifier(body.token_id) if body.token_id else None
    result = store.check(
        conn,
        tenant=body.tenant,
        token_id=token_id,
        family_id=body.family_id,
        user=body.user,
        agent=body.agent,
        client_id=body.client_id,
        session_id=body.session_id,
        now=datetime.now(UTC),
    )
    return CheckResponse(
        allow=result.allow,
        reason=result.reason,
        order_id=result.order_id,
        kill_switch_id=result.kill_switch_id,
    )
