// Live feed: the newest detections and revocation orders, polled every two seconds.
import { api, itemsOf } from "./api.js";
import { fill, fmtTime, h, section, table } from "./dom.js";
import {
  deliveriesText, entityLink, familyLink, orderLink, severityBadge, statusBadge, targetText,
} from "./common.js";

const SEVERITIES = ["", "info", "low", "medium", "high", "critical"];

function detectionRow(d, fresh) {
  return h(
    "tr",
    { class: fresh ? "fresh" : "", dataset: { id: d.id, detector: d.detector } },
    h("td", { class: "nowrap" }, fmtTime(d.time)),
    h("td", null, severityBadge(d.severity)),
    h("td", { class: "mono" }, d.detector),
    h("td", null, d.tenant),
    h("td", null, entityLink(d.entity_key || d.entity)),
    h("td", null, familyLink(d.family_id, d.tenant)),
    h("td", { class: "reason" }, d.reason),
  );
}

function orderRow(o, fresh) {
  return h(
    "tr",
    { class: fresh ? "fresh" : "", dataset: { id: o.id, status: o.status } },
    h("td", { class: "nowrap" }, fmtTime(o.created_at)),
    h("td", null, orderLink(o.id)),
    h("td", null, statusBadge(o.status)),
    h("td", null, o.action, o.mode === "dry_run" ? h("span", { class: "muted" }, " (dry run)") : ""),
    h("td", null, targetText(o.target)),
    h("td", { class: "mono" }, o.rule || o.actor || "—"),
    h("td", null, deliveriesText(o.deliveries)),
  );
}

export async function renderFeed(ctx) {
  const severity = h("select", { id: "feed-severity", name: "severity" },
    SEVERITIES.map((s) => h("option", { value: s }, s || "any severity")));
  const detector = h("input", { id: "feed-detector", name: "detector", placeholder: "detector" });
  const entity = h("input", { id: "feed-entity", name: "entity", placeholder: "entity key" });
  const updated = h("span", { class: "muted", id: "feed-updated" }, "");
  const detections = h("div", { id: "detections" });
  const orders = h("div", { id: "orders" });
  fill(
    ctx.main,
    h("div", { class: "toolbar" }, h("h1", null, "Live feed"), severity, detector, entity, updated),
    section("Detections", detections),
    section("Revocation orders", orders),
  );
  const seen = new Set();
  let first = true;
  const refresh = async () => {
    const [dets, ords] = await Promise.all([
      api("/v1/detections", {
        params: {
          limit: 50, severity: severity.value, detector: detector.value.trim(),
          entity: entity.value.trim(),
        },
      }),
      api("/v1/orders", { params: { limit: 50 } }),
    ]);
    if (!ctx.alive()) return;
    const d = itemsOf(dets);
    const o = itemsOf(ords);
    fill(detections, table(
      ["time", "severity", "detector", "tenant", "entity", "family", "reason"],
      d.map((x) => detectionRow(x, !first && !seen.has(x.id))),
      { empty: "no detections yet", cls: "detections" },
    ));
    fill(orders, table(
      ["created", "order", "status", "action", "target", "rule", "deliveries"],
      o.map((x) => orderRow(x, !first && !seen.has(x.id))),
      { empty: "no orders yet", cls: "orders" },
    ));
    for (const x of [...d, ...o]) seen.add(x.id);
    first = false;
    fill(updated, `updated ${new Date().toISOString().slice(11, 19)}Z`);
  };
  for (const el of [severity, detector, entity]) el.addEventListener("change", () => refresh());
  ctx.every(refresh);
}
