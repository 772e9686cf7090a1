"""Subjects of security events: RFC 9493 Subject Identifiers and SSF 1.0 complex subjects.

RFC 9493 §3: "A Subject Identifier MUST conform to a specific Identifier Format and MUST
contain a "format" member whose value is the name of that Identifier Format." Each format
names its REQUIRED members; a Subject Identifier missing one is refused here
(``invalid_request``):

==================  ======================  ==========================================
format              required members        defined in
==================  ======================  ==========================================
account             uri (``acct:`` URI)     RFC 9493 §3.2.1
email               email                   RFC 9493 §3.2.2
iss_sub             iss, sub                RFC 9493 §3.2.3
opaque              id                      RFC 9493 §3.2.4
phone_number        phone_number            RFC 9493 §3.2.5
did                 url (``did:`` URL)      RFC 9493 §3.2.6
uri                 uri                     RFC 9493 §3.2.7
aliases             identifiers (non-empty) RFC 9493 §3.2.8
jwt_id              iss, jti                SSF 1.0 §3.5.1
saml_assertion_id   issuer, assertion_id    SSF 1.0 §3.5.2
ip-addresses        ip-addresses (array)    SSF 1.0 §3.5.3
complex             one or more of user,    SSF 1.0 §3.3
                    device, session,
                    application, tenant,
                    org_unit, group, ...
==================  ======================  ==========================================

RFC 9493 §3.2.8: the "identifiers" member "is REQUIRED and MUST NOT be null or empty", and
"aliases" Subject Identifiers "MUST NOT be nested". SSF 1.0 §3.3: a Complex Subject "has a
format field, and one or more Simple Subject Members. The name of the format field is
"format", and its value is "complex"." "Additional Subject Member names MAY be used in
Complex Subjects" — they are kept, and validated as Subject Identifiers too.

SSF 1.0 §3.4 allows "A proprietary subject identifier format that is agreed to between
parties": any other format name is accepted as a :class:`ProprietarySubject` with its members
kept as they are (the spec's own example uses ``"format": "catalog_item"``). SSF 1.0 §4.2.3:
"Receivers MUST ignore any fields they do not understand" — unknown members of the known
formats are kept (``model_extra``) but never required.

Legacy shapes (``legacy=True``, per transmitter), normalised before validation:

- ``subject_type`` instead of ``format`` — Google's RISC transmitter (RISC 1.0 §3.1: "the
  existing RISC implementation by Google uses the field name subject_type instead of the
  field name format");
- the pre-RFC 9493 / draft format names ``iss-sub``, ``phone``, ``jwt-id``;
- a complex subject without ``"format": "complex"`` (SSF drafts before 1.0 had no format
  member on complex subjects).

Without ``legacy`` these are not rewritten: a subject with no ``format`` is refused, and
``"format": "iss-sub"`` is taken as a proprietary format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ssf.errors import InvalidRequest, excerpt

#: Member names SSF 1.0 §3.3 defines for complex subjects.
COMPLEX_MEMBERS: Final[tuple[str, ...]] = (
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
)

#: Legacy format names and what they are called now.
LEGACY_FORMATS: Final[Mapping[str, str]] = {
    "iss-sub": "iss_sub",
    "phone": "phone_number",
    "jwt-id": "jwt_id",
}

Id = Annotated[StrictStr, Field(min_length=1, max_length=4096)]


class SubjectIdentifier(BaseModel):
    """Base of every subject: a ``format`` and its members (frozen; unknown members kept)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    format: str

    def to_wire(self) -> dict[str, Any]:
        """The subject as it appears in a SET (``sub_id`` / ``subject``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AccountSubject(SubjectIdentifier):
    """RFC 9493 §3.2.1: ``uri`` REQUIRED, an ``acct:`` URI (RFC 7565)."""

    format: Literal["account"] = "account"
    uri: Id

    @field_validator("uri")
    @classmethod
    def _acct(cls, value: str) -> str:
        if not value.startswith("acct:"):
            raise ValueError("an account subject's uri must be an acct: URI")
        return value


class EmailSubject(SubjectIdentifier):
    """RFC 9493 §3.2.2: ``email`` REQUIRED."""

    format: Literal["email"] = "email"
    email: Id


class IssSubSubject(SubjectIdentifier):
    """RFC 9493 §3.2.3: ``iss`` and ``sub`` REQUIRED."""

    format: Literal["iss_sub"] = "iss_sub"
    iss: Id
    sub: Id


class OpaqueSubject(SubjectIdentifier):
    """RFC 9493 §3.2.4: ``id`` REQUIRED."""

    format: Literal["opaque"] = "opaque"
    id: Id


class PhoneNumberSubject(SubjectIdentifier):
    """RFC 9493 §3.2.5: ``phone_number`` REQUIRED (E.164; not enforced — SSF's own examples
    write ``"+1 206 555 0123"``)."""

    format: Literal["phone_number"] = "phone_number"
    phone_number: Id


class DidSubject(SubjectIdentifier):
    """RFC 9493 §3.2.6: ``url`` REQUIRED, a DID URL."""

    format: Literal["did"] = "did"
    url: Id

    @field_validator("url")
    @classmethod
    def _did(cls, value: str) -> str:
        if not value.startswith("did:"):
            raise ValueError("a did subject's url must be a did: URL")
        return value


class UriSubject(SubjectIdentifier):
    """RFC 9493 §3.2.7: ``uri`` REQUIRED."""

    format: Literal["uri"] = "uri"
    uri: Id


class JwtIdSubject(SubjectIdentifier):
    """SSF 1.0 §3.5.1: ``iss`` and ``jti`` of the JWT REQUIRED — names one token."""

    format: Literal["jwt_id"] = "jwt_id"
    iss: Id
    jti: Id


class SamlAssertionIdSubject(SubjectIdentifier):
    """SSF 1.0 §3.5.2: ``issuer`` and ``assertion_id`` REQUIRED."""

    format: Literal["saml_assertion_id"] = "saml_assertion_id"
    issuer: Id
    assertion_id: Id


class IpAddressesSubject(SubjectIdentifier):
    """SSF 1.0 §3.5.3: ``ip-addresses`` REQUIRED, an array of IP address strings."""

    format: Literal["ip-addresses"] = "ip-addresses"
    ip_addresses: tuple[Id, ...] = Field(alias="ip-addresses", min_length=1)


class ProprietarySubject(SubjectIdentifier):
    """SSF 1.0 §3.4: a format agreed between the parties; members kept in ``model_extra``."""

    format: Annotated[StrictStr, Field(min_length=1, max_length=256)]


_SIMPLE: Final[dict[str, type[SubjectIdentifier]]] = {
    "account": AccountSubject,
    "email": EmailSubject,
    "iss_sub": IssSubSubject,
    "opaque": OpaqueSubject,
    "phone_number": PhoneNumberSubject,
    "did": DidSubject,
    "uri": UriSubject,
    "jwt_id": JwtIdSubject,
    "saml_assertion_id": SamlAssertionIdSubject,
    "ip-addresses": IpAddressesSubject,
}
_PROPRIETARY = "proprietary"


def _format_of(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get("format")
    return getattr(value, "format", None)


def _tag(value: Any) -> str | None:
    """Discriminator: the format name for the known formats, else ``proprietary``.

    ``aliases`` and ``complex`` come back as themselves, so a union that lacks them (the
    members of ``aliases``; the members of a complex subject) refuses them: no nesting.
    """
    fmt = _format_of(value)
    if not isinstance(fmt, str):
        return None
    if fmt in _SIMPLE or fmt in ("aliases", "complex"):
        return fmt
    return _PROPRIETARY


_DISCRIMINATOR: Final = Discriminator(
    _tag,
    custom_error_type="subject_format",
    custom_error_message=(
        "not a Subject Identifier allowed here (needs a string format; aliases do not nest; "
        "complex subjects only at the top)"
    ),
)

AliasMember = Annotated[
    Annotated[AccountSubject, Tag("account")]
    | Annotated[EmailSubject, Tag("email")]
    | Annotated[IssSubSubject, Tag("iss_sub")]
    | Annotated[OpaqueSubject, Tag("opaque")]
    | Annotated[PhoneNumberSubject, Tag("phone_number")]
    | Annotated[DidSubject, Tag("did")]
    | Annotated[UriSubject, Tag("uri")]
    | Annotated[JwtIdSubject, Tag("jwt_id")]
    | Annotated[SamlAssertionIdSubject, Tag("saml_assertion_id")]
    | Annotated[IpAddressesSubject, Tag("ip-addresses")]
    | Annotated[ProprietarySubject, Tag(_PROPRIETARY)],
    _DISCRIMINATOR,
]


class AliasesSubject(SubjectIdentifier):
    """RFC 9493 §3.2.8: ``identifiers`` REQUIRED, non-empty, no nested ``aliases``."""

    format: Literal["aliases"] = "aliases"
    identifiers: tuple[AliasMember, ...] = Field(min_length=1)


#: A Subject Identifier (RFC 9493 §3): anything but a complex subject.
SimpleSubject = Annotated[
    Annotated[AccountSubject, Tag("account")]
    | Annotated[EmailSubject, Tag("email")]
    | Annotated[IssSubSubject, Tag("iss_sub")]
    | Annotated[OpaqueSubject, Tag("opaque")]
    | Annotated[PhoneNumberSubject, Tag("phone_number")]
    | Annotated[DidSubject, Tag("did")]
    | Annotated[UriSubject, Tag("uri")]
    | Annotated[JwtIdSubject, Tag("jwt_id")]
    | Annotated[SamlAssertionIdSubject, Tag("saml_assertion_id")]
    | Annotated[IpAddressesSubject, Tag("ip-addresses")]
    | Annotated[AliasesSubject, Tag("aliases")]
    | Annotated[ProprietarySubject, Tag(_PROPRIETARY)],
    _DISCRIMINATOR,
]

_SIMPLE_ADAPTER: Final[TypeAdapter[Any]] = TypeAdapter(SimpleSubject)


class ComplexSubject(SubjectIdentifier):
    """SSF 1.0 §3.3: ``"format": "complex"`` and one or more Simple Subject Members.

    "All members within a Complex Subject MUST represent attributes of the same Subject
    Principal" (§3.3.1). Members other than the seven named ones are kept in ``model_extra``:
    an object with a ``format`` is validated as a Subject Identifier and counts as a member;
    anything else is kept as it came and ignored (SSF 1.0 §4.2.3).
    """

    format: Literal["complex"] = "complex"
    user: SimpleSubject | None = None
    device: SimpleSubject | None = None
    session: SimpleSubject | None = None
    application: SimpleSubject | None = None
    tenant: SimpleSubject | None = None
    org_unit: SimpleSubject | None = None
    group: SimpleSubject | None = None

    @model_validator(mode="after")
    def _members(self) -> ComplexSubject:
        extra = self.__pydantic_extra__
        if extra:
            for name, value in list(extra.items()):
                if isinstance(value, Mapping) and "format" in value:
                    extra[name] = _SIMPLE_ADAPTER.validate_python(value)
        if not self.members():
            raise ValueError("a complex subject needs one or more simple subject members")
        return self

    def members(self) -> dict[str, SubjectIdentifier]:
        """Every member present, named ones first: ``{"user": ..., "tenant": ...}``."""
        found: dict[str, SubjectIdentifier] = {}
        for name in COMPLEX_MEMBERS:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        for name, value in (self.__pydantic_extra__ or {}).items():
            if isinstance(value, SubjectIdentifier):
                found[name] = value
        return found


#: The subject of a security event: any Subject Identifier or a complex subject.
Subject = Annotated[
    Annotated[AccountSubject, Tag("account")]
    | Annotated[EmailSubject, Tag("email")]
    | Annotated[IssSubSubject, Tag("iss_sub")]
    | Annotated[OpaqueSubject, Tag("opaque")]
    | Annotated[PhoneNumberSubject, Tag("phone_number")]
    | Annotated[DidSubject, Tag("did")]
    | Annotated[UriSubject, Tag("uri")]
    | Annotated[JwtIdSubject, Tag("jwt_id")]
    | Annotated[SamlAssertionIdSubject, Tag("saml_assertion_id")]
    | Annotated[IpAddressesSubject, Tag("ip-addresses")]
    | Annotated[AliasesSubject, Tag("aliases")]
    | Annotated[ComplexSubject, Tag("complex")]
    | Annotated[ProprietarySubject, Tag(_PROPRIETARY)],
    _DISCRIMINATOR,
]

_SUBJECT_CLASSES: Final[dict[str, type[SubjectIdentifier]]] = {
    **_SIMPLE,
    "aliases": AliasesSubject,
    "complex": ComplexSubject,
    _PROPRIETARY: ProprietarySubject,
}


def _normalise(obj: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    """Rewrite the legacy shapes (module docstring) into SSF 1.0 ones; a new dict."""
    out = dict(obj)
    if "format" not in out and "subject_type" in out:
        out["format"] = out.pop("subject_type")
    fmt = out.get("format")
    if isinstance(fmt, str):
        out["format"] = LEGACY_FORMATS.get(fmt, fmt)
    elif fmt is None and not nested and _looks_complex(out):
        out["format"] = "complex"
    if out.get("format") == "complex":
        for name, value in out.items():
            if name != "format" and isinstance(value, dict):
                out[name] = _normalise(value, nested=True)
    elif out.get("format") == "aliases" and isinstance(out.get("identifiers"), list):
        out["identifiers"] = [
            _normalise(v, nested=True) if isinstance(v, dict) else v for v in out["identifiers"]
        ]
    return out


def _looks_complex(obj: Mapping[str, Any]) -> bool:
    """A format-less object whose members are all objects, at least one of them a named
    complex member (``user``, ``device``, …)."""
    return (
        bool(obj)
        and any(name in obj for name in COMPLEX_MEMBERS)
        and all(isinstance(value, dict) for value in obj.values())
    )


def describe(error: ValidationError, where: str) -> str:
    """One line out of a pydantic error: the first problem, where it is, how many more."""
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    parts = [where]
    for part in first["loc"]:
        text = str(part)
        if text != parts[-1]:  # a tagged union repeats the tag before the field
            parts.append(text)
    text = f"{'.'.join(parts)}: {first['msg']}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more)"
    return text


def parse_subject(obj: object, *, legacy: bool = False, where: str = "subject") -> Subject:
    """Validate a subject from a SET (``sub_id``, an event's ``subject``, a stream's subject).

    ``legacy`` rewrites the legacy shapes first (module docstring). Raises
    :class:`~ssf.errors.InvalidRequest` naming the missing or malformed member; ``where``
    prefixes the description (``"sub_id"``, ``"events[...].subject"``).
    """
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where} must be a JSON object, not {type(obj).__name__}")
    if legacy:
        obj = _normalise(obj, nested=False)
    tag = _tag(obj)
    if tag is None:
        raise InvalidRequest(
            f"{where} has no string format member (RFC 9493 §3); "
            f"members: {excerpt(sorted(obj), 120)}"
        )
    try:
        subject = _SUBJECT_CLASSES[tag].model_validate(obj)
    except ValidationError as error:
        raise InvalidRequest(describe(error, where)) from None
    return cast(Subject, subject)
