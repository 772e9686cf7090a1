// Entities: the list (search by any part of the key) and one entity's page — risk,
// baselines, observed vs baseline rate, the timeline with anomalies marked, scopes and
// networks seen, its detections.
import { api, apiPath, itemsOf } from "./api.js";
import { badge, fill, fmtTime, h, link, route, section, table } from "./dom.js";
import { entityLink, familyLink, severityBadge } from "./common.js";
import { ratePlot, timelineStrip } from "./plot.js";

export async function renderEntities(ctx) {
  const q = h("input", {
    id: "entity-q", name: "q", placeholder: "part of the key", "aria-label": "search entities",
    value: ctx.query.get("q") || "",
  });
  const list = h("div", { id: "entity-list" });
  const form = h("form", { class: "toolbar" }, h("h1", null, "Entities"), q,
    h("button", { type: "submit" }, "Search"));
  fill(ctx.main, form, section("Entities with learned state or recent events", list));
  const load = async () => {
    const doc = await api("/v1/entities", { params: { q: q.value.trim(), limit: 200 } });
    if (!ctx.alive()) return;
    fill(list, table(
      ["entity", "tenant", "user", "agent", "audience"],
      itemsOf(doc).map((e) => h("tr", { dataset: { entity: e.entity_key } },
        h("td", null, entityLink(e.entity_key)),
        h("td", null, e.tenant), h("td", null, e.user ?? "—"), h("td", null, e.agent ?? "—"),
        h("td", null, e.audience ?? "—"))),
      { empty: "no entities yet", cls: "entities" },
    ));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch(ctx.report);
  });
  await load();
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function baselinesPanel(b) {
  const parts = [];
  if (b.volume) {
    parts.push(kv([
      ["calls seen", String(b.volume.calls)],
      ["baseline", `${b.volume.baseline_per_minute} calls/min`],
      ["first seen", fmtTime(b.volume.first_seen)],
      ["last seen", fmtTime(b.volume.last_seen)],
    ]));
  }
  if (b.destination) {
    parts.push(kv([
      ["destinations", (b.destination.destinations || []).join(", ") || "—"],
      ["last network", b.destination.last_network ?? "—"],
      ["network switches/h", String(b.destination.network_switches_per_hour ?? 0)],
    ]));
  }
  return parts.length ? parts : h("p", { class: "muted" }, "no baselines learned yet");
}

function eventRow(e, tenant) {
  const tok = e.token;
  const src = e.source;
  return h(
    "tr",
    { class: e.anomalous ? "anomalous" : "", dataset: { id: e.id, anomalous: e.anomalous ? "true" : "false" } },
    h("td", { class: "nowrap" }, fmtTime(e.time)),
    h("td", null, e.anomalous ? badge("anomaly", "sev-critical") : ""),
    h("td", { class: "mono" }, e.action),
    h("td", { class: "mono" }, tok ? `${tok.type || "token"} ${tok.parent_id ? `${tok.parent_id} → ` : ""}${tok.id ?? "?"}` : "—"),
    h("td", null, tok && tok.family_id ? familyLink(tok.family_id, tenant) : "—"),
    h("td", null, (e.scopes || []).join(" ") || "—"),
    h("td", { class: "mono" }, src ? [src.ip, src.asn != null ? `AS${src.asn}` : null].filter(Boolean).join(" ") : "—"),
    h("td", null, e.destination ?? "—"),
    h("td", null, e.outcome ?? "—"),
  );
}

async function relatedEntities(doc) {
  const holder = (doc.detections || []).find((d) => d.user || d.agent);
  if (!holder) return [];
  const q = `${doc.tenant}/${holder.user || "-"}/`;
  const found = itemsOf(await api("/v1/entities", { params: { q, tenant: doc.tenant } }));
  return found.map((e) => e.entity_key).filter((k) => k !== doc.entity_key);
}

export async function renderEntity(ctx, ...parts) {
  const key = parts.join("/");
  const draw = async () => {
    const doc = await api(apiPath("entities", key));
    if (!ctx.alive()) return;
    const events = doc.events || [];
    const anomalies = events.filter((e) => e.anomalous).map((e) => e.time);
    const family = /^[^/]+\/family\/(.+)$/.exec(key);
    const related = doc.rate?.observed?.length ? [] : await relatedEntities(doc);
    if (!ctx.alive()) return;
    const detectionsPanel = section("Detections", table(["time", "severity", "detector", "reason"],
      (doc.detections || []).map((d) => h("tr", null,
        h("td", { class: "nowrap" }, fmtTime(d.time)), h("td", null, severityBadge(d.severity)),
        h("td", { class: "mono" }, d.detector), h("td", { class: "reason" }, d.reason))),
      { empty: "no detections", cls: "entity-detections" }));
    const relatedLine = related.length
      ? h("p", { class: "related" }, "Usage entities of the same holder: ",
        related.map((k) => h("span", { class: "related-item" }, entityLink(k))))
      : "";
    const title = h("div", { class: "toolbar" }, h("h1", null, "Entity"),
      h("span", { class: "mono entity-key" }, doc.entity_key));
    if (family) { // a family's detections are keyed by the family: no usage state of its own
      fill(ctx.main, title,
        section("Token family",
          kv([["tenant", doc.tenant], ["risk", String(doc.risk)], ["as of", fmtTime(doc.as_of)]]),
          h("p", null, "This entity is a token family: ", familyLink(family[1], doc.tenant)),
          relatedLine),
        detectionsPanel,
        h("p", null, link("← all entities", route("entities"))));
      return;
    }
    fill(
      ctx.main,
      title,
      section("Who",
        kv([
          ["tenant", doc.tenant],
          ["user", doc.user ?? "—"],
          ["agent", doc.agent ?? "—"],
          ["audience", doc.audience ?? "—"],
          ["risk", String(doc.risk)],
          ["as of", fmtTime(doc.as_of)],
        ]),
        relatedLine,
      ),
      section("Calls per minute: observed vs baseline",
        doc.rate?.observed?.length || doc.rate?.baseline?.length
          ? ratePlot(doc.rate, anomalies)
          : h("p", { class: "muted" }, "no recent calls of this entity in memory")),
      section("Timeline (newest first; anomalies marked)",
        events.length ? timelineStrip(events) : "",
        table(["time", "", "action", "token", "family", "scopes", "source", "destination", "outcome"],
          events.map((e) => eventRow(e, doc.tenant)), { empty: "no recent events", cls: "timeline" })),
      h("div", { class: "columns" },
        section("Scopes seen", table(["scope", "calls", "last seen"],
          (doc.scopes || []).map((x) => h("tr", { dataset: { scope: x.scope } },
            h("td", { class: "mono" }, x.scope), h("td", null, String(x.count)), h("td", null, fmtTime(x.last_seen)))),
          { empty: "none", cls: "scopes" })),
        section("Networks seen", table(["network", "calls", "last seen"],
          (doc.networks || []).map((x) => h("tr", { dataset: { network: x.network } },
            h("td", { class: "mono" }, x.network), h("td", null, String(x.count)), h("td", null, fmtTime(x.last_seen)))),
          { empty: "none", cls: "networks" })),
      ),
      section("Baselines", baselinesPanel(doc.baselines || {})),
      detectionsPanel,
      h("p", null, link("← all entities", route("entities"))),
    );
  };
  await draw();
  ctx.every(draw, 5000, { immediate: false });
}
