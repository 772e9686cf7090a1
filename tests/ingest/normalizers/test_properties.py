"""Arbitrary JSON to every format never crashes: each value is mapped to a valid AuditEvent,
ignored on purpose, or rejected with a reason (issue 6, tests)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.normalizers import NormalizeError, normalize_batch
from tests.ingest.normalizers.helpers import HASHER, REGISTRY, cases

# What a JSON decoder (orjson) can produce: integers within 64 bits, finite floats.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "2026-11-23T08:00:00Z",
            "refresh_token",
            "sertft",
            "REFRESH_TOKEN",
            "grant.error",
            "app.oauth2.as.token.detect_reuse",
            "acme",
            "",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
FORMATS = sorted(REGISTRY)
EXAMPLES = [(fmt, case["record"]) for fmt, case in cases()]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(fmt: str, value: Any, tenant: str | None) -> None:
    normalizer = REGISTRY[fmt]
    if isinstance(value, dict):
        reason = "mapped"
        try:
            mapped = normalizer.normalize(value, tenant=tenant)
        except NormalizeError as exc:
            reason = exc.reason
        else:
            assert mapped is None or isinstance(mapped, dict)
        assert reason, "a NormalizeError must say why"
    batch = normalize_batch([value], normalizer=normalizer, hasher=HASHER, tenant=tenant)
    assert batch.total == 1
    for rejected in batch.rejected:
        assert rejected.index == 0
        assert rejected.reason.startswith(f"{fmt}: ") or rejected.reason.startswith("malformed")
    for event in batch.events:
        orjson.loads(event.to_json())  # serialisable, and a valid event by construction


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), value=JSON, tenant=st.sampled_from([None, "acme"]))
def test_arbitrary_json_is_mapped_ignored_or_rejected(
    fmt: str, value: Any, tenant: str | None
) -> None:
    _check(fmt, value, tenant)


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A documented example (and its format) with one value somewhere inside replaced by
    arbitrary JSON, or one key removed: reaches the deep branches random JSON never does."""
    fmt, original = draw(st.sampled_from(EXAMPLES))
    record = copy.deepcopy(original)
    node: Any = record
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        children = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
        if not children:
            break
        _, node = draw(st.sampled_from(children))
    if isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(JSON)
    elif isinstance(node, list) and node:
        node[draw(st.integers(min_value=0, max_value=len(node) - 1))] = draw(JSON)
    return fmt, record


@SETTINGS
@given(example=mutated_examples(), tenant=st.sampled_from([None, "acme"]))
def test_mutated_documented_examples_are_mapped_ignored_or_rejected(
    example: tuple[str, dict[str, Any]], tenant: str | None
) -> None:
    fmt, record = example
    _check(fmt, record, tenant)


@settings(max_examples=100, deadline=None)
@given(value=JSON)
def test_detection_never_raises(value: Any) -> None:
    from ingest.normalizers import detect_format

    assert detect_format(value, REGISTRY) in {None, *REGISTRY}


CREDENTIALS = st.sampled_from(
    [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "Bearer abcdefghijklmnop",
        "bAsIc dXNlcjpwYXNzd29yZA==",
        "DPoP\tabcdefghijklmnop",
        "ghp_" + "a" * 36,
        "xoxb-1234567890-abcdefgh",
        "ya29.a0AfH6SMBabcdefgh",
        "1//0gabcdefghijklmnopqrstu",
        "sk-proj-abcdefghijklmnopqrstu",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(max_size=60)
    | st.builds(lambda a, c, b: a + c + b, st.text(max_size=8), CREDENTIALS, st.text(max_size=8))
)
def test_the_redaction_precheck_never_skips_a_credential(text: str) -> None:
    """``bounded`` skips ``redact_text`` for strings ``MAYBE_SECRET`` does not match; that
    is only safe if ``redact_text`` would have left them unchanged."""
    from ingest import redact_text
    from ingest.normalizers._fields import MAYBE_SECRET

    if redact_text(text) != text:
        assert MAYBE_SECRET.search(text) is not None
