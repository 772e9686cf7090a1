"""``tokenwarden evaluate``: replay labelled traffic through the pipeline and score it.

The file goes through the same ``Stages`` as ``tokenwarden replay`` (engine, policy, store,
executor, on a temporary SQLite database unless told otherwise). Each detection is then
matched to the labelled attacks:

* it belongs to an attack when it names one of the attack's events, or when it is about the
  attack's token family or its ``tenant/user/agent`` between the attack's start and ten
  minutes after its last event (the agent's next calls after an attack are still the
  attack's consequence, not a false alarm);
* every other detection is a false positive. False positives that fall on a benign
  scenario (a concurrent refresh's events; a deploy's agent, a new agent, a travelling user
  after the scenario started) are also counted per scenario kind.

Per attack: *events to detect* is the position, among the attack's events in time order,
of the event the first matching detection fired on (1 = caught on the first abusive event);
*seconds to detect* is event time from the attack's first event to that detection.
"""

from __future__ import annotations

import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import orjson

from ingest import NORMALIZERS, TokenHasher
from tokenwarden.formats import normalize
from tokenwarden.pipeline import Stages
from tokenwarden.replay import replay
from tokenwarden.simulate import IMMEDIATE_KINDS

AFTERMATH_SECONDS = 3600.0

TARGET_OTHER_RECALL = 0.95
TARGET_FP_PER_10K = 1.0


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass(slots=True)
class Evaluation:
    report: dict[str, Any]
    detections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def targets_met(self) -> bool:
        return bool(self.report["targets"]["met"])


def load_event_times(path: Path, hasher: TokenHasher) -> dict[str, float]:
    """Event id -> epoch time of every event in the file: native events as written, IdP
    records (an Okta LogEvent, an Auth0 log entry) under the id and time their normalizer
    gives them, as the replay sees them."""
    times: dict[str, float] = {}
    foreign: list[Any] = []
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                ev = orjson.loads(line)
                if "action" in ev and "id" in ev:
                    times[ev["id"]] = _ts(ev["time"])
                else:
                    foreign.append(ev)
    if foreign:
        parsed = normalize(foreign, formats=NORMALIZERS, fmt=None, hasher=hasher, tenant=None)
        for event in parsed.events:
            times[event.id] = event.time.timestamp()
    return times


def run_evaluation(
    events_path: Path,
    labels: dict[str, Any],
    *,
    stages: Stages,
    hasher: TokenHasher,
    batch_size: int = 5000,
) -> Evaluation:
    buf = io.BytesIO()
    stats = replay(
        events_path, stages=stages, hasher=hasher, detections_out=buf, batch_size=batch_size
    )
    detections = [orjson.loads(line) for line in buf.getvalue().splitlines() if line]
    report = score(detections, labels, load_event_times(events_path, hasher))
    report["replay"] = {
        "events": stats.events,
        "rejected": len(stats.rejected),
        "seconds": round(stats.seconds, 2),
        "events_per_s": round(stats.events / stats.seconds) if stats.seconds else None,
    }
    return Evaluation(report=report, detections=detections)


def _principal(d: dict[str, Any]) -> str:
    return f"{d['tenant']}/{d.get('user') or '-'}/{d.get('agent') or d.get('client_id') or '-'}"


def _matches(d: dict[str, Any], attack: dict[str, Any], t: float) -> bool:
    if attack["_ids"].intersection(d["event_ids"]):
        return True
    if d["tenant"] != attack["tenant"] or not attack["_start"] <= t <= attack["_until"]:
        return False
    if d.get("family_id") and d["family_id"] == attack.get("family_id"):
        return True
    return _principal(d) == str(attack["principal"])


def _benign_kind(d: dict[str, Any], benign: list[dict[str, Any]], t: float) -> str | None:
    for item in benign:
        if item["_ids"].intersection(d["event_ids"]):
            return str(item["kind"])
        if item["kind"] == "concurrent_refresh":
            continue
        if t >= item["_start"] and fnmatchcase(_principal(d), item["principal"]):
            return str(item["kind"])
    return None


def score(
    detections: list[dict[str, Any]], labels: dict[str, Any], times: dict[str, float]
) -> dict[str, Any]:
    """The evaluation report for ``detections`` against ``labels``."""
    attacks = [dict(a) for a in labels["attacks"]]
    for a in attacks:
        ordered = sorted(a["event_ids"], key=lambda i: (times.get(i, 0.0), i))
        a["_order"] = {eid: n for n, eid in enumerate(ordered, start=1)}
        a["_times"] = [times[i] for i in ordered if i in times]
        a["_ids"] = set(a["event_ids"])
        a["_start"] = _ts(a["start"])
        a["_until"] = _ts(a["end"]) + AFTERMATH_SECONDS
    benign = [dict(b) for b in labels.get("benign", [])]
    for b in benign:
        b["_ids"] = set(b["event_ids"])
        b["_start"] = _ts(b["start"])
    attack_events = {i for a in attacks for i in a["_ids"]}
    benign_events = int(labels.get("events", len(times))) - len(attack_events)

    first: dict[str, tuple[float, dict[str, Any]]] = {}
    contributed: dict[str, set[str]] = defaultdict(set)
    tp_by_detector: Counter[str] = Counter()
    fp_by_detector: Counter[str] = Counter()
    benign_hits: Counter[str] = Counter()
    false_positives: list[dict[str, Any]] = []
    for d in detections:
        t = _ts(d["time"])
        hit = [a for a in attacks if _matches(d, a, t)]
        if not hit:
            fp_by_detector[d["detector"]] += 1
            kind = _benign_kind(d, benign, t)
            if kind:
                benign_hits[kind] += 1
            false_positives.append(
                {
                    "detector": d["detector"],
                    "entity": d["entity"],
                    "time": d["time"],
                    "benign_scenario": kind,
                    "reason": d["reason"],
                }
            )
            continue
        tp_by_detector[d["detector"]] += 1
        names = {d["detector"], *d.get("evidence", {}).get("contributions", {})}
        for a in hit:
            for name in names:
                contributed[name].add(a["id"])
            if a["id"] not in first or t < first[a["id"]][0]:
                first[a["id"]] = (t, d)

    per_kind: dict[str, dict[str, Any]] = {}
    first_by_detector: Counter[str] = Counter()
    all_events: list[float] = []
    all_seconds: list[float] = []
    missed: list[dict[str, Any]] = []
    late_immediate: list[str] = []
    kinds = list(dict.fromkeys(a["kind"] for a in attacks))
    for kind in kinds:
        group = [a for a in attacks if a["kind"] == kind]
        ev_counts: list[float] = []
        secs: list[float] = []
        for a in group:
            got = first.get(a["id"])
            if got is None:
                missed.append({"id": a["id"], "kind": kind, "entity": a["entity"]})
                continue
            t, d = got
            hits = [a["_order"][i] for i in d["event_ids"] if i in a["_order"]]
            n = min(hits) if hits else max(1, sum(1 for x in a["_times"] if x <= t))
            ev_counts.append(n)
            secs.append(max(0.0, t - a["_start"]))
            first_by_detector[d["detector"]] += 1
            if kind in IMMEDIATE_KINDS and n > 1:
                late_immediate.append(a["id"])
        all_events.extend(ev_counts)
        all_seconds.extend(secs)
        per_kind[kind] = _summary(len(group), ev_counts, secs)
    overall = _summary(len(attacks), all_events, all_seconds)
    fp = len(false_positives)
    fp_rate = fp / benign_events * 10_000 if benign_events else 0.0
    others = [a for a in attacks if a["kind"] not in IMMEDIATE_KINDS]
    others_hit = sum(1 for a in others if a["id"] in first)
    immediate = [a for a in attacks if a["kind"] in IMMEDIATE_KINDS]
    immediate_ok = all(a["id"] in first for a in immediate) and not late_immediate
    other_recall = others_hit / len(others) if others else 1.0
    targets = {
        "immediate_within_1_event": immediate_ok,
        "other_recall": round(other_recall, 4),
        "other_recall_ok": other_recall >= TARGET_OTHER_RECALL,
        "fp_per_10k_ok": fp_rate <= TARGET_FP_PER_10K,
        "benign_scenarios_silent": not benign_hits,
    }
    targets["met"] = all(
        v
        for k, v in targets.items()
        if k.endswith("_ok") or k in {"immediate_within_1_event", "benign_scenarios_silent"}
    )
    detectors = sorted(
        {*tp_by_detector, *fp_by_detector, *contributed}, key=lambda n: (-tp_by_detector[n], n)
    )
    return {
        "events": int(labels.get("events", len(times))),
        "attack_events": len(attack_events),
        "benign_events": benign_events,
        "detections": len(detections),
        "per_kind": per_kind,
        "overall": overall,
        "false_positives": fp,
        "fp_per_10k_benign": round(fp_rate, 3),
        "benign_scenario_detections": dict(benign_hits),
        "detectors": {
            name: {
                "true_positive_detections": tp_by_detector[name],
                "false_positive_detections": fp_by_detector[name],
                "attacks_first_detected": first_by_detector[name],
                "attacks_contributed": len(contributed.get(name, ())),
            }
            for name in detectors
        },
        "missed": missed,
        "late_immediate": late_immediate,
        "false_positive_examples": false_positives[:20],
        "targets": targets,
    }


def _summary(total: int, ev_counts: list[float], secs: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "detected": len(ev_counts),
        "total": total,
        "events_to_detect_median": r(statistics.median(ev_counts)) if ev_counts else None,
        "events_to_detect_p95": r(_pct(ev_counts, 0.95)),
        "seconds_to_detect_median": r(statistics.median(secs)) if secs else None,
        "seconds_to_detect_p95": r(_pct(secs, 0.95)),
    }


def render(report: dict[str, Any]) -> str:
    """The report as a text table."""
    lines = [
        f"{'attack':<18} {'detected':>9} {'events p50/p95':>15} {'seconds p50/p95':>17}",
    ]
    rows = [*report["per_kind"].items(), ("overall", report["overall"])]
    for kind, s in rows:
        lines.append(
            f"{kind:<18} {s['detected']:>4}/{s['total']:<4} "
            f"{_f(s['events_to_detect_median']):>7}/{_f(s['events_to_detect_p95']):<7} "
            f"{_f(s['seconds_to_detect_median']):>8}/{_f(s['seconds_to_detect_p95']):<8}"
        )
    lines.append(
        f"false positives: {report['false_positives']} in {report['benign_events']:,} benign "
        f"events = {report['fp_per_10k_benign']} per 10,000; on benign scenarios: "
        f"{report['benign_scenario_detections'] or 'none'}"
    )
    lines.append("detector contributions (TP detections / FP detections / first / contributed):")
    for name, c in report["detectors"].items():
        lines.append(
            f"  {name:<14} {c['true_positive_detections']:>5} / {c['false_positive_detections']:>3}"
            f" / {c['attacks_first_detected']:>3} / {c['attacks_contributed']:>3}"
        )
    t = report["targets"]
    lines.append(
        f"targets: {'MET' if t['met'] else 'NOT MET'} (refresh reuse and parallel use within 1 "
        f"event: {t['immediate_within_1_event']}; others {t['other_recall']:.1%} >= 95%: "
        f"{t['other_recall_ok']}; <= 1 FP per 10k: {t['fp_per_10k_ok']}; benign scenarios "
        f"silent: {t['benign_scenarios_silent']})"
    )
    for m in report["missed"]:
        lines.append(f"  missed {m['id']} {m['kind']} on {m['entity']}")
    for fp in report["false_positive_examples"][:10]:
        lines.append(f"  false positive {fp['detector']} on {fp['entity']}: {fp['reason']}")
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"
