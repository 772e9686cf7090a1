// Pieces several views share: links to entities, families and orders; severity badges.
import { badge, h, link, route } from "./dom.js";

const FAMILY_ENTITY = /^([^/]+)\/family\/(.+)$/;

export function severityBadge(severity) {
  return badge(severity || "?", `sev-${severity || "unknown"}`);
}

export function statusBadge(status) {
  return badge(status || "?", `status-${status || "unknown"}`);
}

export function entityLink(key) {
  if (!key) return "—";
  return link(key, route("entity", key), { class: "entity-link mono" });
}

export function familyLink(familyId, tenant) {
  if (!familyId) return "—";
  const parts = tenant ? ["family", familyId, tenant] : ["family", familyId];
  return link(familyId, route(...parts), { class: "family-link mono" });
}

export function orderLink(orderId) {
  if (!orderId) return "—";
  return link(orderId, route("order", orderId), { class: "order-link mono" });
}

/** An alert's or detection's entity: a family key ("t/family/f") links to the family. */
export function subjectLink(entity) {
  const m = FAMILY_ENTITY.exec(entity || "");
  if (m) return h("span", null, "family ", familyLink(m[2], m[1]));
  // a usage entity is tenant/user/agent/audience; anything else (a kill switch's
  // tenant/kind/value) has no entity page
  if ((entity || "").split("/").length >= 4) return entityLink(entity);
  return h("span", { class: "mono" }, entity || "—");
}

export function targetText(target) {
  if (!target) return "—";
  if (target.kind === "family") {
    return h("span", null, "family ", familyLink(target.value, target.tenant));
  }
  return h("span", { class: "mono" }, `${target.kind} ${target.value} (${target.tenant})`);
}

export function deliveriesText(deliveries) {
  if (!deliveries || deliveries.length === 0) return "—";
  return h(
    "span",
    { class: "deliveries" },
    deliveries.map((d) =>
      badge(`${d.adapter}: ${d.state}${d.attempts > 1 ? ` ×${d.attempts}` : ""}`,
        `delivery-${d.state}`),
    ),
  );
}
