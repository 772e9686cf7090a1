"""Token families and their tokens, as seen in the audit stream.

A family is every token descending from one grant through refresh-token rotation
(RFC 6749 §6, RFC 9700 §4.14.2): when reuse is detected the whole family is revoked. We
learn families from ``token.issued`` / ``token.refreshed`` / ``token.used`` events that
carry ``token.family_id``; for ``token.refreshed``, ``token.id`` is the token issued and
``token.parent_id`` the refresh token presented (DESIGN.md, wire schema), so both are
members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, tuple_

from ingest.event import AuditEvent
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.tables import families, tokens
from revocation.upsert import rows_insert, rows_params

#: The actions whose token belongs to a family we track.
TOKEN_ACTIONS = frozenset({"token.issued", "token.refreshed", "token.used"})


class TokenView(BaseModel):
    """One token of a family: identifiers only, never the token."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    parent_id: str | None
    type: str | None
    issued_at: datetime
    revoked_at: datetime | None


class FamilyView(BaseModel):
    """A family: who holds it, whether and why it was revoked, its tokens in issue order."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    family_id: str
    user: str | None
    agent: str | None
    client_id: str | None
    session_id: str | None
    device_id: str | None = None
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    revoked_by_order: str | None
    revoke_reason: str | None
    tokens: tuple[TokenView, ...] = ()


def _family_of(ev: AuditEvent, known: dict[tuple[str, str], str]) -> str | None:
    """The event's family: named by the event, else the family of the refresh token it
    presents (or issues), else — for a refresh or an issued refresh token never seen
    before — a new family named after that token (the ``refresh_reuse`` detector's rule)."""
    tok = ev.token
    if tok is None:
        return None
    if tok.family_id is not None:
        return tok.family_id
    if ev.action == "token.refreshed" and tok.parent_id is not None:
        return known.get((ev.tenant, tok.parent_id), tok.parent_id)
    if tok.id is not None:
        found = known.get((ev.tenant, tok.id))
        if found is None and ev.action == "token.issued" and tok.type == "refresh_token":
            return tok.id
        return found
    return None


def _unnamed_tokens(events: Sequence[AuditEvent]) -> set[tuple[str, str]]:
    """Tokens whose family must be looked up because their event names none."""
    out: set[tuple[str, str]] = set()
    for ev in events:
        tok = ev.token
        if ev.action in TOKEN_ACTIONS and tok is not None and tok.family_id is None:
            ref = tok.parent_id if ev.action == "token.refreshed" else tok.id
            if ref is not None:
                out.add((ev.tenant, ref))
    return out


def _known_families(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Families of already-recorded tokens, one query for the whole batch."""
    if not keys:
        return {}
    rows = conn.execute(
        select(tokens.c.tenant, tokens.c.token_id, tokens.c.family_id).where(
            tuple_(tokens.c.tenant, tokens.c.token_id).in_(sorted(keys)),
            tokens.c.family_id.is_not(None),
        )
    )
    return {(r.tenant, r.token_id): r.family_id for r in rows}


def _facts(
    events: Sequence[AuditEvent], known: dict[tuple[str, str], str] | None = None
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """The family and token rows a batch implies, one per key (first sighting wins).

    ``known`` maps (tenant, token) to the family of tokens recorded earlier; it grows as
    the batch is read, so a rotation chain inside one batch stays in one family.
    (Run for every event of the audit stream: written for speed, ~2 µs per event on the
    README's benchmark machines.)
    """
    fams: dict[tuple[str, str], dict[str, Any]] = {}
    toks: dict[tuple[str, str], dict[str, Any]] = {}
    known = {} if known is None else known
    for ev in events:
        tok = ev.token
        if tok is None:
            continue
        action = ev.action
        if action not in TOKEN_ACTIONS:
            continue
        family_id = tok.family_id
        if family_id is None:
            family_id = _family_of(ev, known)
            if family_id is None:
                continue
        token_id = tok.id
        # for a refresh, the presented token is a refresh token (RFC 6749 §6); its own
        # parent is unknown
        presented = tok.parent_id if action == "token.refreshed" else None
        if token_id is None and presented is None:
            continue
        tenant = ev.tenant
        when = ev.time
        if token_id is not None:
            known.setdefault((tenant, token_id), family_id)
        if presented is not None:
            known.setdefault((tenant, presented), family_id)
        fam = fams.get((tenant, family_id))
        if fam is None:
            session = ev.attributes.get("session_id")
            device = ev.attributes.get("device_id")
            fams[(tenant, family_id)] = {
                "tenant": tenant,
                "family_id": family_id,
                "user": ev.user,
                "agent": ev.agent,
                "client_id": ev.client_id,
                "session_id": session if isinstance(session, str) else None,
                "device_id": device if isinstance(device, str) else None,
                "created_at": when,
                "last_seen_at": when,
            }
        else:
            # a field still unknown is filled by a later sighting
            if fam["user"] is None:
                fam["user"] = ev.user
            if fam["agent"] is None:
                fam["agent"] = ev.agent
            if fam["client_id"] is None:
                fam["client_id"] = ev.client_id
            if fam["session_id"] is None:
                session = ev.attributes.get("session_id")
                if isinstance(session, str):
                    fam["session_id"] = session
            if fam["device_id"] is None:
                device = ev.attributes.get("device_id")
                if isinstance(device, str):
                    fam["device_id"] = device
            if when < fam["created_at"]:
                fam["created_at"] = when
            if when > fam["last_seen_at"]:
                fam["last_seen_at"] = when
        if token_id is not None:
            _token_row(toks, tenant, token_id, family_id, tok.parent_id, tok.type, when)
        if presented is not None:
            _token_row(toks, tenant, presented, family_id, None, "refresh_token", when)
    return fams, toks


def _token_row(
    toks: dict[tuple[str, str], dict[str, Any]],
    tenant: str,
    token_id: str,
    family_id: str,
    parent_id: str | None,
    type_: str | None,
    when: datetime,
) -> None:
    row = toks.get((tenant, token_id))
    if row is None:
        toks[(tenant, token_id)] = {
            "tenant": tenant,
            "token_id": token_id,
            "family_id": family_id,
            "parent_id": parent_id,
            "type": type_,
            "issued_at": when,
        }
        return
    # out-of-order delivery: a child seen as a parent first learns its parent later
    row["parent_id"] = row["parent_id"] or parent_id
    row["type"] = row["type"] or type_
    if when < row["issued_at"]:
        row["issued_at"] = when


def record_tokens(conn: Connection, *, events: Sequence[AuditEvent], now: datetime) -> None:
    """Record the families and tokens a batch of events shows; at most three statements per
    batch (a lookup of the families of tokens whose events name none, and two upserts).
    On PostgreSQL each upsert is one execution whose rows travel as one JSON document
    (``json_to_recordset``); on SQLite, one execution per row (``executemany``).

    Families are upserted: created on first sighting (``user``/``agent``/``client_id``/
    ``session_id`` from that sighting; a field still unknown is filled by a later one),
    ``created_at``/``last_seen_at`` widened to the events' times otherwise. Tokens are
    inserted once; a later sighting only fills what was unknown (family, parent, type — logs
    arrive out of order, so a child may be seen as a parent before its own refresh) and
    moves ``issued_at`` (the earliest event showing the token) earlier. A token first seen
    in a family that is already revoked is inserted revoked (``revoked_at = now``): new
    tokens of a revoked family are revoked.

    Concurrency (PostgreSQL, READ COMMITTED): the family upsert always updates the row, so
    it takes the family's row lock, as revoking does (``execute_orders``). Whichever comes
    second waits for the other to commit and then sees its effect: either the token insert
    sees the family revoked, or the revocation's token update sees the new token.
    """
    fams, toks = _facts(events, _known_families(conn, _unnamed_tokens(events)))
    if not fams:
        return
    family_upsert, token_upsert = _upserts(conn)
    # sorted: concurrent batches lock families in the same order (no deadlock on PostgreSQL)
    conn.execute(family_upsert, rows_params(conn, [fams[k] for k in sorted(fams)]))
    conn.execute(token_upsert, rows_params(conn, [toks[k] for k in sorted(toks)], p_now=now))


#: the columns ``record_tokens`` writes
_FAMILY_COLUMNS = (
    "tenant",
    "family_id",
    "user",
    "agent",
    "client_id",
    "session_id",
    "device_id",
    "created_at",
    "last_seen_at",
)
_TOKEN_COLUMNS = ("tenant", "token_id", "family_id", "parent_id", "type", "issued_at")


@per_dialect
def _upserts(dialect: str) -> tuple[Any, Any]:
    """The family and token upserts of ``record_tokens`` (see its docstring)."""
    ins = rows_insert(dialect, families, _FAMILY_COLUMNS)
    family_upsert = ins.on_conflict_do_update(
        index_elements=[families.c.tenant, families.c.family_id],
        set_={
            "user": func.coalesce(families.c.user, ins.excluded.user),
            "agent": func.coalesce(families.c.agent, ins.excluded.agent),
            "client_id": func.coalesce(families.c.client_id, ins.excluded.client_id),
            "session_id": func.coalesce(families.c.session_id, ins.excluded.session_id),
            "device_id": func.coalesce(families.c.device_id, ins.excluded.device_id),
            "created_at": case(
                (ins.excluded.created_at < families.c.created_at, ins.excluded.created_at),
                else_=families.c.created_at,
            ),
            "last_seen_at": case(
                (ins.excluded.last_seen_at > families.c.last_seen_at, ins.excluded.last_seen_at),
                else_=families.c.last_seen_at,
            ),
        },
    )

    def revoked_now(values: Mapping[str, Any]) -> dict[str, Any]:
        """A token of a family already revoked is inserted revoked."""
        when = (
            select(bindparam("p_now", type_=UTCDateTime()))
            .where(
                families.c.tenant == values["tenant"],
                families.c.family_id == values["family_id"],
                families.c.revoked_at.is_not(None),
            )
            .scalar_subquery()
        )
        return {"revoked_at": when}

    insert_tokens = rows_insert(dialect, tokens, _TOKEN_COLUMNS, revoked_now)
    ex = insert_tokens.excluded
    t = tokens.c
    token_upsert = insert_tokens.on_conflict_do_update(
        index_elements=[t.tenant, t.token_id],
        set_={
            "family_id": func.coalesce(t.family_id, ex.family_id),
            "parent_id": func.coalesce(t.parent_id, ex.parent_id),
            "type": func.coalesce(t.type, ex.type),
            "issued_at": case((ex.issued_at < t.issued_at, ex.issued_at), else_=t.issued_at),
            "revoked_at": func.coalesce(t.revoked_at, ex.revoked_at),
        },
        # only when the sighting adds something: a token seen again is otherwise untouched
        where=or_(
            and_(t.family_id.is_(None), ex.family_id.is_not(None)),
            and_(t.parent_id.is_(None), ex.parent_id.is_not(None)),
            and_(t.type.is_(None), ex.type.is_not(None)),
            ex.issued_at < t.issued_at,
            and_(t.revoked_at.is_(None), ex.revoked_at.is_not(None)),
        ),
    )
    return family_upsert, token_upsert


def get_family(
    conn: Connection, *, tenant: str | None, family_id: str, token_limit: int = 1000
) -> FamilyView | None:
    """A family with its tokens in issue order (the newest ``token_limit`` of them).

    With ``tenant=None`` the family is looked up in every tenant; if several tenants use the
    same family id, the first tenant in sort order is shown.
    """
    query = select(families).where(families.c.family_id == family_id)
    if tenant is not None:
        query = query.where(families.c.tenant == tenant)
    row = conn.execute(query.order_by(families.c.tenant).limit(1)).first()
    if row is None:
        return None
    newest = (
        select(
            tokens.c.token_id,
            tokens.c.parent_id,
            tokens.c.type,
            tokens.c.issued_at,
            tokens.c.revoked_at,
        )
        .where(tokens.c.tenant == row.tenant, tokens.c.family_id == family_id)
        .order_by(tokens.c.issued_at.desc(), tokens.c.token_id.desc())
        .limit(token_limit)
    )
    members = [TokenView.model_validate(t._mapping) for t in conn.execute(newest)]
    members.reverse()
    return FamilyView.model_validate({**row._mapping, "tokens": tuple(members)})
