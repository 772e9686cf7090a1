// Alerts: newest first; an open one can be acknowledged (with an optional note).
import { api, apiPath, itemsOf } from "./api.js";
import { badge, fill, fmtTime, h, section, table } from "./dom.js";
import { orderLink, subjectLink } from "./common.js";
import { confirmDialog } from "./dialog.js";
import { showBanner } from "./banner.js";

export async function renderAlerts(ctx) {
  const open = h("input", { type: "checkbox", id: "alerts-open", name: "open" });
  const list = h("div", { id: "alert-list" });
  fill(
    ctx.main,
    h("div", { class: "toolbar" }, h("h1", null, "Alerts"),
      h("label", { class: "inline" }, open, " unacknowledged only")),
    section("Alerts", list),
  );

  async function acknowledge(a) {
    const note = await confirmDialog({
      id: "ack-dialog",
      title: "Acknowledge alert",
      body: h("p", null, "Acknowledge the alert on ", h("strong", null, a.entity),
        ` (${a.count} order${a.count === 1 ? "" : "s"})? On-call stops being paged for it.`),
      field: { label: "Note (optional)", required: false },
      confirmLabel: "Acknowledge",
    });
    if (note === null) return;
    try {
      await api(`${apiPath("alerts", a.id)}/ack`, { method: "POST", body: note ? { note } : {} });
      await refresh();
    } catch (err) {
      showBanner(`acknowledge failed: ${err.message}`);
    }
  }

  const row = (a) => h(
    "tr",
    { dataset: { id: a.id, status: a.status, acknowledged: a.acknowledged_at ? "true" : "false" } },
    h("td", { class: "nowrap" }, fmtTime(a.opened_at)),
    h("td", null, a.acknowledged_at
      ? badge("acknowledged", "alert-acknowledged")
      : badge(a.status, `alert-${a.status}`)),
    h("td", null, a.tenant),
    h("td", null, subjectLink(a.entity)),
    h("td", { class: "mono" }, a.rule ?? "—"),
    h("td", null, String(a.count)),
    h("td", null, orderLink(a.last_order_id || a.order_id)),
    h("td", null, a.acknowledged_at
      ? h("span", { class: "acked" }, `acknowledged ${fmtTime(a.acknowledged_at)} by `,
        h("span", { class: "mono" }, a.acknowledged_by ?? "?"), a.ack_note ? ` — ${a.ack_note}` : "")
      : h("button", {
        type: "button", class: "primary ack",
        disabled: !ctx.canRespond,
        title: ctx.canRespond ? "acknowledge this alert" : "needs the responder role",
        on: { click: () => acknowledge(a) },
      }, "Acknowledge…")),
  );

  async function refresh() {
    const doc = await api("/v1/alerts", { params: { unacknowledged: open.checked ? "true" : "" } });
    if (!ctx.alive()) return;
    if (document.getElementById("ack-dialog")) return;
    fill(list, table(["opened", "status", "tenant", "about", "rule", "orders", "last order", ""],
      itemsOf(doc).map(row), { empty: "no alerts", cls: "alerts" }));
  }
  open.addEventListener("change", () => refresh().catch(ctx.report));
  ctx.every(refresh);
}
