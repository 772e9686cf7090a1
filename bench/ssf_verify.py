"""SET verification throughput, one JSON line of figures.

Measures, in the same run and on the same machine: ``SetVerifier.verify`` end to end
(parse, typ/alg/kid checks, signature, claims, events and subjects) for RS256 and ES256,
next to the bare ``cryptography`` signature check with a pre-parsed key (the floor), PyJWT's
``get_unverified_header`` and full ``decode`` per token, and jwcrypto's verify when jwcrypto
is installed — the numbers behind choosing bare ``cryptography`` for the hot path
(``ssf/jws.py``).

    python bench/ssf_verify.py [--sets 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptography
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ssf import JwksCache, SetVerifier, TransmitterPolicy, TransmitterRegistry

ISSUER = "https://idp.example.com/123456789/"
AUDIENCE = "https://receiver.example.com/caep"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload(i: int) -> dict[str, Any]:
    """A CAEP session-revoked SET shaped like the spec's complex-subject example."""
    return {
        "iss": ISSUER,
        "jti": f"{i:032x}",
        "iat": int(NOW.timestamp()) - 2,
        "aud": AUDIENCE,
        "txn": "8675309",
        "sub_id": {
            "format": "complex",
            "session": {"format": "opaque", "id": f"dMTlD|1600802906337.16|{i}"},
            "user": {"format": "iss_sub", "iss": ISSUER, "sub": f"user-{i % 977}"},
            "tenant": {"format": "opaque", "id": "123456789"},
        },
        "events": {
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "initiating_entity": "policy",
                "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
                "event_timestamp": int(NOW.timestamp()) - 5,
            }
        },
    }


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)
    total_s = sum(ordered) / 1e9
    return {
        "per_s": round(n / total_s),
        "p50_us": round(ordered[n // 2] / 1000, 1),
        "p99_us": round(ordered[min(n - 1, (n * 99) // 100)] / 1000, 1),
        "mean_us": round(statistics.fmean(ordered) / 1000, 1),
    }


def _time_each(fn: Callable[[Any], object], items: list[Any]) -> dict[str, float]:
    for item in items[:200]:
        fn(item)  # warm up
    samples: list[int] = []
    clock = time.perf_counter_ns
    for item in items:
        t0 = clock()
        fn(item)
        samples.append(clock() - t0)
    return _percentiles(samples)


async def _time_verifier(verifier: SetVerifier, tokens: list[str]) -> dict[str, float]:
    for token in tokens[:200]:
        await verifier.verify(token, now=NOW)  # warm up (and the key lookup)
    samples: list[int] = []
    clock = time.perf_counter_ns
    wall = clock()
    for token in tokens:
        t0 = clock()
        await verifier.verify(token, now=NOW)
        samples.append(clock() - t0)
    wall = clock() - wall
    figures = _percentiles(samples)
    figures["sets_per_s"] = round(len(tokens) / (wall / 1e9))
    del figures["per_s"]
    return figures


def _raw_verify(alg: str, public: Any) -> Callable[[tuple[bytes, bytes]], None]:
    """The floor: one signature check with a pre-parsed key, signature already decoded."""
    if alg == "RS256":

        def rs256(item: tuple[bytes, bytes]) -> None:
            public.verify(item[1], item[0], padding.PKCS1v15(), hashes.SHA256())

        return rs256

    def es256(item: tuple[bytes, bytes]) -> None:
        raw = item[1]
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public.verify(der, item[0], ec.ECDSA(hashes.SHA256()))

    return es256


def _jwcrypto(public: Any, alg: str, tokens: list[str]) -> dict[str, float] | None:
    try:
        from jwcrypto import jwk, jws
    except ImportError:
        return None
    key = jwk.JWK.from_pyca(public)

    def check(token: str) -> None:
        obj = jws.JWS()
        obj.deserialize(token)
        obj.verify(key, alg=alg)

    return _time_each(check, tokens)


def run(n: int) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }
    out: dict[str, Any] = {
        "bench": "ssf_verify",
        "sets": n,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "pyjwt": jwt.__version__,
        "verifier": {},
        "raw_cryptography": {},
        "pyjwt_decode": {},
    }
    header_us: list[float] = []
    for alg, private in keys.items():
        kid = f"{alg.lower()}-1"
        tokens = [
            jwt.encode(
                _payload(i), private, algorithm=alg, headers={"typ": "secevent+jwt", "kid": kid}
            )
            for i in range(n)
        ]
        public = private.public_key()
        jwk = orjson.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(public))
        registry = TransmitterRegistry()
        registry.add(
            TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE),
            JwksCache(jwks={"keys": [jwk | {"kid": kid, "use": "sig", "alg": alg}]}),
        )
        verifier = SetVerifier(registry)
        out["verifier"][alg] = asyncio.run(_time_verifier(verifier, tokens))

        split = [(t.rsplit(".", 1)[0].encode(), _unb64(t.rsplit(".", 1)[1])) for t in tokens]
        out["raw_cryptography"][alg] = _time_each(_raw_verify(alg, public), split)

        sample = tokens[: max(2000, n // 10)]
        out["pyjwt_decode"][alg] = _time_each(
            lambda t, public=public, alg=alg: jwt.decode(
                t, public, algorithms=[alg], audience=AUDIENCE, options={"verify_iat": False}
            ),
            sample,
        )
        header_us.append(_time_each(jwt.get_unverified_header, sample)["mean_us"])
        out.setdefault("jwcrypto_verify", {})[alg] = _jwcrypto(public, alg, sample)

    out["pyjwt_get_unverified_header_us"] = round(statistics.fmean(header_us), 1)
    out["verifier_share_of_raw"] = {
        alg: round(out["verifier"][alg]["sets_per_s"] / out["raw_cryptography"][alg]["per_s"], 2)
        for alg in keys
    }
    out["target_10k_per_s_met"] = all(v["sets_per_s"] >= 10_000 for v in out["verifier"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, default=20_000, help="SETs per algorithm")
    args = parser.parse_args()
    print(orjson.dumps(run(args.sets)).decode())


if __name__ == "__main__":
    main()
