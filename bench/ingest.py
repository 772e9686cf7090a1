"""Ingest throughput per log format, one JSON line of figures.

For each format (native, okta, auth0, keycloak, oidc-provider, and a declarative
``FieldMapping``) it builds a few thousand records from the documented example events in
``tests/fixtures/ingest`` (each copy with its own ids), serialises them as NDJSON bodies of
``--batch`` records, and measures, in the same run, events/s for decode + normalize +
validate (``ingest.decode`` then ``normalize_batch``) — best of ``--repeat`` passes. As a
reference, ``native_validate_events_per_s`` is the plain ``parse_batch`` path without a
normalizer.

    python bench/ingest.py [--records 5000] [--batch 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import TokenHasher, decode, parse_batch
from ingest.normalizers import FieldMapping, Normalizer, build_registry, normalize_batch
from tokenwarden.runtime import tune_gc

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ingest"
FILES = {
    "native": "native",
    "okta": "okta",
    "auth0": "auth0",
    "keycloak": "keycloak",
    "oidc-provider": "oidc_provider",
    "mapping": "mapping",
}


def _load(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / f"{stem}.json").read_bytes())
    return data


def _vary(fmt: str, record: dict[str, Any], n: int) -> dict[str, Any]:
    """A copy of ``record`` with its own event and token ids (copy number ``n``)."""
    out = copy.deepcopy(record)
    tag = f"{n:06d}"
    if fmt == "native":
        out["id"] = f"evt-bench-{tag}"
        out.setdefault("tenant", "acme")  # so the parse_batch reference rejects nothing
    elif fmt == "okta":
        out["uuid"] = f"{out['uuid'][:-6]}{tag}"
    elif fmt == "auth0":
        inner = out.get("data", out)
        inner["log_id"] = f"{inner['log_id'][:-6]}{tag}"
        out["log_id"] = inner["log_id"]
    elif fmt == "keycloak":
        out["id"] = f"bench-{tag}"
        out["time"] = int(out["time"]) + n
    elif fmt == "oidc-provider":
        for entity in (out.get("ctx") or {}).get("entities", {}).values():
            entity["jti"] = f"{entity['jti'][:-6]}{tag}"
    else:
        out["request_id"] = f"req-{tag}"
    return out


def _bodies(fmt: str, stem: str, records: int, batch: int) -> list[bytes]:
    examples = [c["record"] for c in _load(stem)["cases"] if c["expect"] is not None]
    lines = [orjson.dumps(_vary(fmt, examples[i % len(examples)], i)) for i in range(records)]
    return [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]


def run(records: int, batch: int, repeat: int) -> dict[str, Any]:
    tune_gc()  # as the service does
    hasher = TokenHasher(b"bench-key-bench-key-bench-key-32")
    registry = build_registry([FieldMapping.from_config(_load("mapping")["config"])])
    normalizers: dict[str, Normalizer] = {
        fmt: registry["gateway" if fmt == "mapping" else fmt] for fmt in FILES
    }
    bodies = {fmt: _bodies(fmt, stem, records, batch) for fmt, stem in FILES.items()}

    def validate_native() -> int:
        parsed = [parse_batch(body, hasher=hasher) for body in bodies["native"]]
        if any(p.rejected for p in parsed):
            raise SystemExit("native: records rejected; the bench data is broken")
        return sum(len(p.events) for p in parsed)

    def normalize(fmt: str) -> int:
        events = rejected = 0
        for body in bodies[fmt]:
            result = normalize_batch(
                decode(body), normalizer=normalizers[fmt], hasher=hasher, tenant="acme"
            )
            events += len(result.events)
            rejected += len(result.rejected)
        if rejected:
            raise SystemExit(f"{fmt}: {rejected} records rejected; the bench data is broken")
        return events

    jobs = {"native_validate": validate_native} | {
        fmt: (lambda f=fmt: normalize(f)) for fmt in FILES
    }
    best = dict.fromkeys(jobs, float("inf"))
    counts = dict.fromkeys(jobs, 0)
    for _ in range(repeat):  # interleaved passes: every figure sees the same machine state
        for name, job in jobs.items():
            t = time.perf_counter()
            counts[name] = job()
            best[name] = min(best[name], time.perf_counter() - t)
    out: dict[str, Any] = {"records_per_format": records, "batch": batch, "repeat": repeat}
    for name in jobs:
        out[f"{name}_events_per_s"] = round(counts[name] / best[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(orjson.dumps(run(args.records, args.batch, args.repeat)).decode())


if __name__ == "__main__":
    main()
