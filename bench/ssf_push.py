"""SSF push throughput and latency, one JSON line of figures.

In one run, on one machine: the SET verifier alone (RS256, ES256) next to bare
``cryptography`` RS256/ES256 verification (from ``bench/ssf_verify.py``), and then the
HTTP push endpoint end to end — ``tokenwarden serve`` in its own process on loopback,
the embedded pipeline, SQLite: each SET is authenticated, verified, checked against the
jti store, mapped, run through the signal detector and the policy (a CAEP
session-revoked: one detection and one revoke order each), persisted, and its jti
recorded before the 202. Sequential requests give the latency; ``--concurrency``
requests in flight give the throughput.

    python bench/ssf_push.py [--sets 20000] [--http-sets 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ssf_verify import run as run_verifier
from tokenwarden.runtime import tune_gc

ISSUER = "https://idp.bench.example/"
AUDIENCE = "https://tokenwarden.bench.example/"
AUTH = "Bearer bench-push-secret"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def _tokens(private: Any, n: int, offset: int) -> list[str]:
    now = int(time.time())
    return [
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "jti": f"bench-{offset + i}",
                "iat": now,
                "sub_id": {
                    "format": "complex",
                    "user": {"format": "email", "email": f"user{i % 997}@bench.example"},
                    "session": {"format": "opaque", "id": f"sess-{offset + i}"},
                },
                "events": {SESSION_REVOKED: {"event_timestamp": now}},
            },
            private,
            algorithm="RS256",
            headers={"typ": "secevent+jwt", "kid": "k1"},
        )
        for i in range(n)
    ]


def _pct(samples: list[float], q: float) -> float:
    samples = sorted(samples)
    return round(samples[min(len(samples) - 1, int(len(samples) * q))] * 1000, 2)


async def _concurrent(base: str, tokens: list[str], concurrency: int) -> tuple[float, int]:
    headers = {"authorization": AUTH, "content-type": "application/secevent+jwt"}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in tokens:
        queue.put_nowait(t)
    bad = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal bad
        while not queue.empty():
            token = queue.get_nowait()
            r = await client.post("/ssf/events", content=token, headers=headers)
            bad += r.status_code != 202

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, bad


@contextlib.contextmanager
def _server(tmp: Path, jwk: dict[str, Any]) -> Iterator[str]:
    """``tokenwarden serve`` in its own process (so client and server do not share a GIL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "bench.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp / "bench.db"}"\nlog_level = "warning"\n'
        f"[[ssf.transmitters]]\nissuer = {orjson.dumps(ISSUER).decode()}\n"
        f"audience = {orjson.dumps(AUDIENCE).decode()}\n"
        f"authorization_header = {orjson.dumps(AUTH).decode()}\n"
        f'tenant = "bench"\njwks = {{ keys = [ {_toml_inline(jwk)} ] }}\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenwarden.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=Path(__file__).resolve().parents[1],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _toml_inline(jwk: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {orjson.dumps(v).decode()}" for k, v in jwk.items()) + " }"


def run_http(n: int, concurrency: int) -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = orjson.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk |= {"kid": "k1", "alg": "RS256", "use": "sig"}
    sequential = _tokens(private, n, 0)
    parallel = _tokens(private, n, n)
    headers = {"authorization": AUTH, "content-type": "application/secevent+jwt"}
    with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp), jwk) as base:
        latencies: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for token in sequential:
                t0 = time.perf_counter()
                r = client.post("/ssf/events", content=token, headers=headers)
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 202, r.text
        before = httpx.get(base + "/healthz").json()
        seconds, bad = asyncio.run(_concurrent(base, parallel, concurrency))
        after = httpx.get(base + "/healthz").json()
        batches = after["processed_batches"] - before["processed_batches"]
    return {
        "sets": n,
        "sequential_sets_per_s": round(n / sum(latencies)),
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "concurrency": concurrency,
        "concurrent_sets_per_s": round(n / seconds),
        "concurrent_refused": bad,
        "concurrent_sets_per_pipeline_batch": round(n / max(batches, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, default=20_000, help="SETs per algorithm (verifier)")
    parser.add_argument("--http-sets", type=int, default=2_000, help="SETs pushed over HTTP")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    tune_gc()
    verifier = run_verifier(args.sets)
    out = {
        "bench": "ssf_push",
        "verifier_sets_per_s": {a: v["sets_per_s"] for a, v in verifier["verifier"].items()},
        "verifier_p99_us": {a: v["p99_us"] for a, v in verifier["verifier"].items()},
        "raw_cryptography_per_s": {a: v["per_s"] for a, v in verifier["raw_cryptography"].items()},
        "pyjwt_get_unverified_header_us": verifier["pyjwt_get_unverified_header_us"],
        "http_push": run_http(args.http_sets, args.concurrency),
    }
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
