"""Transmitter discovery (SSF 1.0 §7.2) against a real transmitter on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from ssf import (
    POLL_METHOD,
    PUSH_METHOD,
    InvalidIssuer,
    InvalidRequest,
    StreamError,
    TransmitterConfig,
    discover,
    well_known_url,
)
from tests.ssf.helpers import run
from tests.ssf.transmitter import FakeTransmitter


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


@pytest.mark.parametrize(
    ("issuer", "name", "url"),
    [
        # SSF 1.0 §7.2.1, the two examples
        ("https://tr.example.com", "ssf-configuration", "https://tr.example.com/.well-known/ssf-configuration"),
        ("https://tr.example.com/issuer1", "ssf-configuration", "https://tr.example.com/.well-known/ssf-configuration/issuer1"),
        # "any terminating "/" MUST be removed"
        ("https://tr.example.com/", "ssf-configuration", "https://tr.example.com/.well-known/ssf-configuration"),
        ("https://tr.example.com/a/b/", "ssf-configuration", "https://tr.example.com/.well-known/ssf-configuration/a/b"),
        ("https://tr.example.com:8443/t1", "ssf-configuration", "https://tr.example.com:8443/.well-known/ssf-configuration/t1"),
        # SSF 1.0 §7.2.2, the RISC location
        ("https://risc-tr.example.com", "risc-configuration", "https://risc-tr.example.com/.well-known/risc-configuration"),
    ],
)  # fmt: skip
def test_well_known_url_inserts_before_the_path(issuer: str, name: str, url: str) -> None:
    assert well_known_url(issuer, name) == url


@pytest.mark.parametrize(
    "issuer", ["https://tr.example.com?x=1", "https://tr.example.com#f", "tr.example.com", ""]
)
def test_well_known_url_refuses_what_is_not_an_issuer(issuer: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        well_known_url(issuer)


def test_root_issuer_is_discovered(transmitter: FakeTransmitter) -> None:
    async def main() -> TransmitterConfig:
        async with _client() as client:
            return await discover(transmitter.issuer, client=client)

    config = run(main())
    assert transmitter.paths("GET") == ["/.well-known/ssf-configuration"]
    assert config.issuer == transmitter.issuer
    assert config.source == f"{transmitter.base}/.well-known/ssf-configuration"
    assert config.jwks_uri == transmitter.jwks_url
    assert config.delivery_methods_supported == (PUSH_METHOD, POLL_METHOD)
    assert config.supports(POLL_METHOD) and not config.supports("urn:example:carrier-pigeon")
    assert config.configuration_endpoint == f"{transmitter.base}/ssf/stream"
    assert config.status_endpoint == f"{transmitter.base}/ssf/status"
    assert config.add_subject_endpoint == f"{transmitter.base}/ssf/subjects:add"
    assert config.remove_subject_endpoint == f"{transmitter.base}/ssf/subjects:remove"
    assert config.verification_endpoint == f"{transmitter.base}/ssf/verify"
    assert config.critical_subject_members == ("tenant", "user")
    assert [s.spec_urn for s in config.authorization_schemes] == ["urn:ietf:rfc:6749"]
    assert config.default_subjects == "NONE"
    assert config.spec_version == "1_0"
    assert config.raw["issuer"] == transmitter.issuer


@pytest.mark.parametrize("suffix", ["/tenant1", "/tenant1/"])
def test_issuer_with_a_path_uses_the_path_insertion_form(
    transmitter: FakeTransmitter, suffix: str
) -> None:
    issuer = transmitter.base + "/tenant1"

    async def main() -> TransmitterConfig:
        async with _client() as client:
            # the document names ".../tenant1": a requested ".../tenant1/" is another issuer
            if suffix.endswith("/"):
                with pytest.raises(InvalidIssuer):
                    await discover(transmitter.base + suffix, client=client)
            return await discover(issuer, client=client)

    config = run(main())
    assert config.issuer == issuer
    assert set(transmitter.paths("GET")) == {"/.well-known/ssf-configuration/tenant1"}
    assert config.source == f"{transmitter.base}/.well-known/ssf-configuration/tenant1"


def test_legacy_risc_only_transmitter_is_found_after_404s(transmitter: FakeTransmitter) -> None:
    async def main() -> TransmitterConfig:
        async with _client() as client:
            return await discover(transmitter.base + "/legacy", client=client)

    config = run(main())
    assert transmitter.paths("GET") == [
        "/.well-known/ssf-configuration/legacy",
        "/.well-known/sse-configuration/legacy",
        "/.well-known/risc-configuration/legacy",
    ]
    assert config.issuer == transmitter.base + "/legacy"
    assert config.source == f"{transmitter.base}/.well-known/risc-configuration/legacy"


def test_legacy_sse_location_is_tried_before_risc(transmitter: FakeTransmitter) -> None:
    async def main() -> TransmitterConfig:
        async with _client() as client:
            return await discover(transmitter.base + "/sse", client=client)

    config = run(main())
    assert transmitter.paths("GET") == [
        "/.well-known/ssf-configuration/sse",
        "/.well-known/sse-configuration/sse",
    ]
    assert config.source is not None and config.source.endswith("/sse-configuration/sse")


def test_legacy_fallback_can_be_turned_off(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/legacy", client=client, legacy=False)

    with pytest.raises(StreamError) as caught:
        run(main())
    assert caught.value.status == 404
    assert transmitter.paths("GET") == ["/.well-known/ssf-configuration/legacy"]


def test_no_configuration_anywhere_is_a_404_naming_every_place_tried(
    transmitter: FakeTransmitter,
) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/nobody", client=client)

    with pytest.raises(StreamError) as caught:
        run(main())
    assert caught.value.status == 404
    for name in ("ssf-configuration", "sse-configuration", "risc-configuration"):
        assert f"/.well-known/{name}/nobody" in caught.value.reason
    assert len(transmitter.paths("GET")) == 3


def test_a_document_naming_another_issuer_is_refused(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/impostor", client=client)

    with pytest.raises(InvalidIssuer) as caught:
        run(main())
    assert caught.value.err == "invalid_issuer"
    assert "https://evil.example" in caught.value.description
    assert "7.2.4" in caught.value.description


def test_a_server_error_does_not_fall_back(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/broken", client=client)

    with pytest.raises(StreamError) as caught:
        run(main())
    assert caught.value.status == 500
    assert caught.value.retryable
    assert '"down"' in caught.value.body
    assert transmitter.paths("GET") == ["/.well-known/ssf-configuration/broken"]


def test_a_document_that_is_not_json_is_refused(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/garbage", client=client)

    with pytest.raises(InvalidRequest, match="not JSON"):
        run(main())


def test_an_endpoint_without_tls_is_refused(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            await discover(transmitter.base + "/plaintext", client=client)

    with pytest.raises(InvalidRequest, match=r"configuration_endpoint .* does not use https"):
        run(main())


@pytest.mark.parametrize(
    "document",
    [
        {"jwks_uri": "https://tr.example.com/jwks"},  # no issuer
        {"issuer": "https://tr.example.com", "delivery_methods_supported": "urn:ietf:rfc:8935"},
        {"issuer": "https://tr.example.com", "jwks_uri": 42},
    ],
)
def test_malformed_documents_are_refused(document: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        TransmitterConfig.from_document(document, issuer="https://tr.example.com")


def test_plain_http_issuer_is_refused_unless_loopback_or_allowed() -> None:
    async def main(issuer: str, *, allow_http: bool = False) -> None:
        async with _client() as client:
            await discover(issuer, client=client, allow_http=allow_http, timeout=3.0)

    with pytest.raises(ValueError, match="does not use https"):
        run(main("http://tr.example.com"))
    # allowed, so it goes to the network: a name that cannot resolve fails as StreamError
    with pytest.raises(StreamError) as caught:
        run(main("http://tr.invalid", allow_http=True))
    assert caught.value.status is None


def test_unknown_members_are_kept_in_raw_only() -> None:
    config = TransmitterConfig.from_document(
        {"issuer": "https://tr.example.com", "x-vendor": {"a": 1}},
        issuer="https://tr.example.com",
    )
    assert config.raw["x-vendor"] == {"a": 1}
    assert not hasattr(config, "x-vendor")
    assert config.delivery_methods_supported == ()
    assert config.supports(PUSH_METHOD)  # not advertised: creation decides
