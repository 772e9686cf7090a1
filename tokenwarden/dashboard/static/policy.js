// The policy: each rule with its mode and what its orders did — "would have" for dry-run
// rules, "did" for enforced ones. An admin of every tenant can toggle a rule's dry run.
import { api, apiPath } from "./api.js";
import { badge, fill, h, section, table } from "./dom.js";
import { confirmDialog } from "./dialog.js";
import { showBanner } from "./banner.js";

function n(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function counts(c) {
  if (!c || !c.orders) return h("span", { class: "muted" }, "—");
  const parts = [n(c.orders, "order", "orders")];
  if (c.families) parts.push(n(c.families, "family", "families"));
  if (c.tokens) parts.push(n(c.tokens, "token", "tokens"));
  if (c.kill_switches) parts.push(n(c.kill_switches, "kill switch", "kill switches"));
  return parts.join(", ");
}

export async function renderPolicy(ctx) {
  const summary = h("p", { id: "policy-summary", class: "summary" });
  const list = h("div", { id: "policy-rules" });
  const meta = h("p", { class: "muted", id: "policy-meta" });
  fill(ctx.main, h("div", { class: "toolbar" }, h("h1", null, "Policy")), summary, meta,
    section("Rules", list));

  async function toggle(rule) {
    const next = rule.mode === "dry_run" ? "enforce" : "dry_run";
    const ok = await confirmDialog({
      id: "mode-dialog",
      title: next === "enforce" ? "Enforce rule" : "Put rule in dry run",
      body: h("p", null, `Switch rule ${rule.name} to `, h("strong", null, next),
        next === "enforce" ? ": its orders will revoke for real." : ": its orders are only recorded."),
      confirmLabel: next === "enforce" ? "Enforce" : "Dry run",
      danger: next === "enforce",
    });
    if (ok === null) return;
    try {
      await api(`${apiPath("policy", "rules", rule.name)}/mode`, { method: "PUT", body: { mode: next } });
      await refresh();
    } catch (err) {
      showBanner(`mode change failed: ${err.message}`);
    }
  }

  async function refresh() {
    const doc = await api("/v1/policy");
    if (!ctx.alive() || document.getElementById("mode-dialog")) return;
    const dry = doc.dry_run || {};
    fill(summary, dry.orders
      ? `Dry run: ${n(dry.orders, "order", "orders")} would have revoked `
        + `${n(dry.families, "family", "families")} (${n(dry.tokens, "token", "tokens")})`
        + (dry.kill_switches ? ` and thrown ${n(dry.kill_switches, "kill switch", "kill switches")}.` : ".")
      : "Dry run: no dry-run orders yet.");
    fill(meta, doc.source === "api"
      ? `set through the API by ${doc.updated_by ?? "?"} at ${doc.updated_at ?? "?"}`
      : "from the settings file");
    fill(list, table(
      ["rule", "detector", "min severity", "action", "target", "mode", "would have", "did", ""],
      (doc.rules || []).map((r) => h("tr", { dataset: { rule: r.name, mode: r.mode } },
        h("td", { class: "mono" }, r.name),
        h("td", { class: "mono" }, r.detector ?? "—"),
        h("td", null, r.min_severity ?? "—"),
        h("td", null, r.action ?? "—"),
        h("td", null, r.target ?? "—"),
        h("td", null, badge(r.mode === "dry_run" ? "dry run" : r.mode, `mode-${r.mode}`)),
        h("td", { class: "would-have" }, counts(r.would_have)),
        h("td", { class: "did" }, counts(r.did)),
        h("td", null, ctx.isGlobalAdmin
          ? h("button", { type: "button", class: "toggle", on: { click: () => toggle(r) } },
            r.mode === "dry_run" ? "Enforce…" : "Dry run…")
          : ""))),
      { empty: "no rules", cls: "rules" },
    ));
  }
  ctx.every(refresh, 5000);
}
