"""Subjects: RFC 9493 formats with their required members, SSF complex subjects, legacy shapes."""

from __future__ import annotations

from typing import Any

import pytest

from ssf import (
    AccountSubject,
    AliasesSubject,
    ComplexSubject,
    DidSubject,
    EmailSubject,
    IpAddressesSubject,
    IssSubSubject,
    JwtIdSubject,
    OpaqueSubject,
    PhoneNumberSubject,
    ProprietarySubject,
    SamlAssertionIdSubject,
    SsfError,
    UriSubject,
    parse_subject,
)

VALID: list[tuple[dict[str, Any], type]] = [
    ({"format": "account", "uri": "acct:example.user@service.example.com"}, AccountSubject),
    ({"format": "email", "email": "user@example.com"}, EmailSubject),
    (
        {"format": "iss_sub", "iss": "https://issuer.example.com/", "sub": "145234573"},
        IssSubSubject,
    ),
    ({"format": "opaque", "id": "11112222333344445555"}, OpaqueSubject),
    ({"format": "phone_number", "phone_number": "+12065550100"}, PhoneNumberSubject),
    ({"format": "did", "url": "did:example:123456"}, DidSubject),
    ({"format": "uri", "uri": "https://user.example.com/"}, UriSubject),
    ({"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "B70BA622"}, JwtIdSubject),
    (
        {"format": "saml_assertion_id", "issuer": "https://idp/", "assertion_id": "_8e8dc5f6"},
        SamlAssertionIdSubject,
    ),
    (
        {"format": "ip-addresses", "ip-addresses": ["10.29.37.75", "2001:db8::1"]},
        IpAddressesSubject,
    ),
    (
        {
            "format": "aliases",
            "identifiers": [
                {"format": "email", "email": "user@example.com"},
                {"format": "phone_number", "phone_number": "+12065550100"},
                {"format": "catalog_item", "catalog_id": "c0384"},
            ],
        },
        AliasesSubject,
    ),
    ({"format": "catalog_item", "catalog_id": "c0384/winter/2354122"}, ProprietarySubject),
    (
        {
            "format": "complex",
            "user": {"format": "email", "email": "bar@example.com"},
            "tenant": {"format": "iss_sub", "iss": "https://example.com/idp1", "sub": "1234"},
        },
        ComplexSubject,
    ),
]


@pytest.mark.parametrize(("wire", "cls"), VALID, ids=[w["format"] for w, _ in VALID])
def test_each_format_parses_and_round_trips(wire: dict[str, Any], cls: type) -> None:
    subject = parse_subject(wire)
    assert type(subject) is cls
    assert subject.format == wire["format"]
    assert subject.to_wire() == wire
    assert parse_subject(wire, legacy=True).to_wire() == wire


MISSING = [
    {"format": "account"},
    {"format": "account", "uri": "mailto:x@example.com"},
    {"format": "email"},
    {"format": "email", "email": ""},
    {"format": "email", "email": 7},
    {"format": "iss_sub", "iss": "https://issuer.example.com/"},
    {"format": "iss_sub", "sub": "145234573"},
    {"format": "opaque"},
    {"format": "phone_number"},
    {"format": "did", "url": "https://not-a-did.example"},
    {"format": "uri"},
    {"format": "jwt_id", "iss": "https://idp.example.com/"},
    {"format": "saml_assertion_id", "issuer": "https://idp/"},
    {"format": "ip-addresses", "ip-addresses": []},
    {"format": "ip-addresses"},
    {"format": "aliases", "identifiers": []},
    {"format": "aliases"},
    {"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": []}]},
    {"format": "aliases", "identifiers": [{"format": "email"}]},
    {"format": "complex"},
    {"format": "complex", "user": {"format": "complex", "user": {"format": "opaque", "id": "x"}}},
    {"format": "complex", "user": {"format": "email"}},
    {"format": "complex", "extra": {"format": "email"}},
    {"format": ""},
    {"format": 5},
    {"email": "user@example.com"},
    {},
]


@pytest.mark.parametrize("wire", MISSING, ids=[str(i) for i in range(len(MISSING))])
def test_missing_or_malformed_members_are_refused(wire: dict[str, Any]) -> None:
    with pytest.raises(SsfError) as error:
        parse_subject(wire, where="sub_id")
    assert error.value.err == "invalid_request"
    assert error.value.description.startswith("sub_id")


@pytest.mark.parametrize("value", ["user@example.com", None, ["x"], 5])
def test_subject_must_be_an_object(value: Any) -> None:
    with pytest.raises(SsfError) as error:
        parse_subject(value)
    assert error.value.err == "invalid_request"


def test_description_names_the_member() -> None:
    with pytest.raises(SsfError) as error:
        parse_subject({"format": "complex", "user": {"format": "iss_sub", "iss": "x"}}, where="s")
    assert error.value.description == "s.user.iss_sub.sub: Field required"


def test_complex_members() -> None:
    subject = parse_subject(
        {
            "format": "complex",
            "session": {"format": "opaque", "id": "s-1"},
            "org_unit": {"format": "opaque", "id": "ou-1"},
            "workload": {"format": "uri", "uri": "spiffe://acme/agent"},
            "note": "kept, ignored",
        }
    )
    assert isinstance(subject, ComplexSubject)
    assert list(subject.members()) == ["session", "org_unit", "workload"]
    assert isinstance(subject.members()["workload"], UriSubject)
    assert subject.model_extra is not None and subject.model_extra["note"] == "kept, ignored"


def test_unknown_members_of_known_formats_are_kept() -> None:
    subject = parse_subject({"format": "email", "email": "a@b.example", "x-vendor": {"k": 1}})
    assert subject.to_wire() == {"format": "email", "email": "a@b.example", "x-vendor": {"k": 1}}


def test_subjects_are_frozen_and_hashable() -> None:
    subject = parse_subject({"format": "iss_sub", "iss": "https://i/", "sub": "s"})
    assert isinstance(subject, IssSubSubject)
    with pytest.raises(Exception):  # noqa: B017, PT011 - pydantic's frozen error
        subject.sub = "other"  # type: ignore[misc]
    assert hash(subject) == hash(
        parse_subject({"format": "iss_sub", "iss": "https://i/", "sub": "s"})
    )


LEGACY: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "7375626A656374"},
        {"format": "iss_sub", "iss": "https://accounts.google.com/", "sub": "7375626A656374"},
    ),
    (
        {"subject_type": "email", "email": "a@b.example"},
        {"format": "email", "email": "a@b.example"},
    ),
    (
        {"format": "phone", "phone_number": "+12065550123"},
        {"format": "phone_number", "phone_number": "+12065550123"},
    ),
    ({"format": "iss-sub", "iss": "i", "sub": "s"}, {"format": "iss_sub", "iss": "i", "sub": "s"}),
    (
        {"format": "jwt-id", "iss": "https://idp.example.com/123456789/", "jti": "B70BA622"},
        {"format": "jwt_id", "iss": "https://idp.example.com/123456789/", "jti": "B70BA622"},
    ),
    (
        {
            "user": {"subject_type": "iss-sub", "iss": "https://idp/", "sub": "jane"},
            "device": {"format": "iss_sub", "iss": "https://idp/", "sub": "e929"},
        },
        {
            "format": "complex",
            "user": {"format": "iss_sub", "iss": "https://idp/", "sub": "jane"},
            "device": {"format": "iss_sub", "iss": "https://idp/", "sub": "e929"},
        },
    ),
    (
        {"format": "aliases", "identifiers": [{"subject_type": "phone", "phone_number": "+1"}]},
        {"format": "aliases", "identifiers": [{"format": "phone_number", "phone_number": "+1"}]},
    ),
]


@pytest.mark.parametrize(("legacy", "normalised"), LEGACY, ids=[str(i) for i in range(len(LEGACY))])
def test_legacy_shapes_are_normalised(legacy: dict[str, Any], normalised: dict[str, Any]) -> None:
    assert parse_subject(legacy, legacy=True).to_wire() == normalised


def test_without_legacy_old_names_are_proprietary_and_subject_type_is_refused() -> None:
    assert isinstance(
        parse_subject({"format": "iss-sub", "iss": "i", "sub": "s"}), ProprietarySubject
    )
    for legacy, _ in LEGACY:
        if "format" not in legacy:
            with pytest.raises(SsfError):
                parse_subject(legacy)


def test_legacy_complex_needs_object_members() -> None:
    with pytest.raises(SsfError):
        parse_subject({"user": "jane"}, legacy=True)
