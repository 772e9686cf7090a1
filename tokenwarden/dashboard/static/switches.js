// Kill switches: the active ones (or all), each releasable with a confirmation and a reason.
import { api, apiPath, itemsOf } from "./api.js";
import { fill, fmtTime, h, section, table } from "./dom.js";
import { orderLink, statusBadge } from "./common.js";
import { confirmDialog } from "./dialog.js";
import { showBanner } from "./banner.js";

function describe(k) {
  return `${k.kind} ${k.value} of tenant ${k.tenant}`;
}

export async function renderKillSwitches(ctx) {
  const all = h("input", { type: "checkbox", id: "switches-all", name: "all" });
  const list = h("div", { id: "switch-list" });
  const result = h("p", { id: "switch-result", class: "result", role: "status" });
  fill(
    ctx.main,
    h("div", { class: "toolbar" }, h("h1", null, "Kill switches"),
      h("label", { class: "inline" }, all, " include released")),
    result,
    section("Kill switches", list),
  );

  async function release(k) {
    const reason = await confirmDialog({
      id: "release-dialog",
      title: "Release kill switch",
      body: h("p", null, "Release the kill switch on ", h("strong", null, describe(k)),
        "? Everything it denies is allowed again at once. This is audited."),
      field: { label: "Reason", required: true, placeholder: "why it is safe to release" },
      confirmLabel: "Release",
      danger: true,
    });
    if (reason === null) return;
    try {
      const order = await api(`${apiPath("kill-switches", k.id)}/release`, {
        method: "POST", body: { reason },
      });
      fill(result, "Released ", describe(k), ": order ", orderLink(order.id), " ",
        statusBadge(order.status));
      await refresh();
    } catch (err) {
      showBanner(`release failed: ${err.message}`);
    }
  }

  const row = (k) => h(
    "tr",
    { dataset: { id: k.id, released: k.released_at ? "true" : "false" } },
    h("td", { class: "nowrap" }, fmtTime(k.thrown_at)),
    h("td", null, k.tenant),
    h("td", null, k.kind),
    h("td", { class: "mono" }, k.value),
    h("td", { class: "reason" }, k.reason ?? "—"),
    h("td", null, orderLink(k.order_id)),
    h("td", null, k.released_at
      ? `released ${fmtTime(k.released_at)}`
      : h("button", {
        type: "button", class: "danger release",
        disabled: !ctx.canRespond,
        title: ctx.canRespond ? "release this kill switch" : "needs the responder role",
        on: { click: () => release(k) },
      }, "Release…")),
  );

  async function refresh() {
    const doc = await api("/v1/kill-switches", { params: { active: all.checked ? "false" : "true" } });
    if (!ctx.alive()) return;
    if (document.getElementById("release-dialog")) return; // do not redraw under the dialog
    fill(list, table(["thrown", "tenant", "kind", "value", "reason", "order", ""],
      itemsOf(doc).map(row), { empty: "no active kill switches", cls: "switches" }));
  }
  all.addEventListener("change", () => refresh().catch(ctx.report));
  ctx.every(refresh);
}
