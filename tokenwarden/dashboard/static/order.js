// One revocation order: status, target, reason, per-adapter deliveries, alert, audit.
import { api, apiPath } from "./api.js";
import { badge, fill, fmtTime, h, section, table } from "./dom.js";
import { statusBadge, subjectLink, targetText } from "./common.js";

export async function renderOrder(ctx, orderId) {
  const draw = async () => {
    const o = await api(apiPath("orders", orderId));
    if (!ctx.alive()) return;
    fill(
      ctx.main,
      h("div", { class: "toolbar" }, h("h1", null, "Order"), h("span", { class: "mono" }, o.id),
        statusBadge(o.status)),
      section("What",
        h("dl", { class: "kv" },
          h("dt", null, "action"), h("dd", null, o.action, o.mode === "dry_run" ? " (dry run)" : ""),
          h("dt", null, "target"), h("dd", null, targetText(o.target)),
          h("dt", null, "reason"), h("dd", { class: "reason" }, o.reason ?? "—"),
          h("dt", null, "rule / actor"), h("dd", { class: "mono" }, o.rule ?? o.actor ?? "—"),
          h("dt", null, "created"), h("dd", null, fmtTime(o.created_at)),
          h("dt", null, "executed"), h("dd", null, fmtTime(o.executed_at)),
          h("dt", null, "affected"), h("dd", null, o.affected
            ? Object.entries(o.affected).map(([k, v]) => `${v} ${k}`).join(", ") : "—"))),
      section("Deliveries", table(["adapter", "purpose", "state", "attempts", "delivered", "last error"],
        (o.deliveries || []).map((d) => h("tr", null,
          h("td", { class: "mono" }, d.adapter), h("td", null, d.purpose ?? "—"),
          h("td", null, badge(d.state, `delivery-${d.state}`)), h("td", null, String(d.attempts)),
          h("td", null, fmtTime(d.delivered_at)), h("td", { class: "reason" }, d.last_error ?? "—"))),
        { empty: "no deliveries" })),
      section("Alerts", table(["opened", "status", "about"],
        (o.alerts || []).map((a) => h("tr", null, h("td", null, fmtTime(a.opened_at)),
          h("td", null, a.status), h("td", null, subjectLink(a.entity)))),
        { empty: "no alert" })),
      section("Audit trail", table(["seq", "at", "kind", "actor"],
        (o.audit || []).map((a) => h("tr", null, h("td", null, String(a.seq)),
          h("td", null, fmtTime(a.at || a.time || a.created_at)), h("td", { class: "mono" }, a.kind),
          h("td", { class: "mono" }, a.actor ?? "—"))),
        { empty: "no audit rows" })),
    );
  };
  await draw();
  ctx.every(draw, 5000, { immediate: false });
}
