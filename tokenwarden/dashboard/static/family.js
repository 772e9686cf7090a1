// A token family: who holds it, its state, the rotation chain drawn as boxes (the reused
// token and the replayed rotation marked), its tokens, detections and orders.
import { api, apiPath } from "./api.js";
import { badge, fill, fmtTime, h, s, section, shortTime, table } from "./dom.js";
import { entityLink, orderLink, severityBadge, statusBadge, targetText } from "./common.js";

const BOX_W = 168;
const BOX_H = 58;
const COL_GAP = 44;
const ROW_GAP = 18;
const MARGIN = 12;

function clip(text, n = 22) {
  const t = String(text ?? "");
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

/** The tokens worth drawing: refresh tokens, and any token in a parent/child link. */
function drawable(chain) {
  const parents = new Set(chain.map((t) => t.parent_id).filter(Boolean));
  const picked = chain.filter(
    (t) => t.type === "refresh_token" || t.parent_id || parents.has(t.token_id),
  );
  return (picked.length ? picked : chain).slice(0, 200);
}

/** Lay the rotation tree out left to right: generation = column; a token sits on its
 * first child's row, so the main line is straight and forks branch below it. */
function layout(tokens) {
  const byId = new Map(tokens.map((t) => [t.token_id, t]));
  const children = new Map();
  const roots = [];
  for (const t of tokens) {
    if (t.parent_id && byId.has(t.parent_id)) {
      if (!children.has(t.parent_id)) children.set(t.parent_id, []);
      children.get(t.parent_id).push(t);
    } else {
      roots.push(t);
    }
  }
  const byIssue = (a, b) => String(a.issued_at).localeCompare(String(b.issued_at));
  for (const list of children.values()) list.sort(byIssue);
  roots.sort(byIssue);
  const pos = new Map();
  let nextRow = 0;
  const place = (t, depth, seen) => {
    if (seen.has(t.token_id)) return pos.get(t.token_id)?.row ?? nextRow;
    seen.add(t.token_id);
    const kids = children.get(t.token_id) || [];
    let row;
    if (kids.length === 0) {
      row = nextRow;
      nextRow += 1;
    } else {
      row = place(kids[0], depth + 1, seen);
      for (const k of kids.slice(1)) place(k, depth + 1, seen);
    }
    pos.set(t.token_id, { row, depth });
    return row;
  };
  const seen = new Set();
  for (const r of roots) place(r, 0, seen);
  return { pos, children, rows: nextRow };
}

export function chainDrawing(chain) {
  const tokens = drawable(chain || []);
  const { pos, children, rows } = layout(tokens);
  const depth = Math.max(0, ...[...pos.values()].map((p) => p.depth));
  const width = MARGIN * 2 + (depth + 1) * BOX_W + depth * COL_GAP;
  const height = MARGIN * 2 + Math.max(1, rows) * BOX_H + Math.max(0, rows - 1) * ROW_GAP + 14;
  const svg = s("svg", {
    class: "chain",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "the family's rotation chain; the reused token is marked",
  });
  const at = (id) => {
    const p = pos.get(id);
    return { x: MARGIN + p.depth * (BOX_W + COL_GAP), y: MARGIN + 14 + p.row * (BOX_H + ROW_GAP) };
  };
  const edges = s("g", { class: "edges" });
  for (const t of tokens) {
    if (!t.parent_id || !pos.has(t.parent_id) || !pos.has(t.token_id)) continue;
    const parent = tokens.find((x) => x.token_id === t.parent_id);
    const first = (children.get(t.parent_id) || [])[0];
    const replay = parent && parent.reused && first && first.token_id !== t.token_id;
    const a = at(t.parent_id);
    const b = at(t.token_id);
    const x1 = a.x + BOX_W;
    const y1 = a.y + BOX_H / 2;
    const x2 = b.x;
    const y2 = b.y + BOX_H / 2;
    const mid = (x1 + x2) / 2;
    edges.append(s("path", {
      class: replay ? "edge replay" : "edge",
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      dataset: { from: t.parent_id, to: t.token_id, replay: replay ? "true" : "false" },
    }, s("title", null, replay
      ? `${t.parent_id} presented again → ${t.token_id} (the replay)`
      : `${t.parent_id} rotated → ${t.token_id}`)));
  }
  svg.append(edges);
  for (const t of tokens) {
    if (!pos.has(t.token_id)) continue;
    const { x, y } = at(t.token_id);
    const classes = ["chain-token"];
    if (t.reused) classes.push("reused");
    if (t.revoked_at) classes.push("revoked");
    const state = t.consumed_at ? `rotated ${shortTime(t.consumed_at)}` : t.revoked_at ? "revoked" : "current";
    const g = s("g", {
      class: classes.join(" "),
      transform: `translate(${x},${y})`,
      dataset: { token: t.token_id, reused: t.reused ? "true" : "false" },
    },
    s("title", null, `${t.token_id}${t.parent_id ? ` (from ${t.parent_id})` : ""}`
      + `\nissued ${fmtTime(t.issued_at)}`
      + (t.consumed_at ? `\nrotated ${fmtTime(t.consumed_at)}` : "")
      + (t.revoked_at ? `\nrevoked ${fmtTime(t.revoked_at)}` : "")
      + (t.reused ? "\npresented again after its rotation: REUSED" : "")),
    s("rect", { width: BOX_W, height: BOX_H, rx: 6 }),
    s("text", { class: "token-id", x: 8, y: 18 }, clip(t.token_id)),
    s("text", { class: "token-meta", x: 8, y: 34 }, `issued ${shortTime(t.issued_at)}`),
    s("text", { class: "token-meta", x: 8, y: 49 }, state));
    if (t.reused) {
      g.append(
        s("rect", { class: "reused-tag", x: BOX_W - 62, y: -11, width: 58, height: 18, rx: 4 }),
        s("text", { class: "reused-label", x: BOX_W - 33, y: 2, "text-anchor": "middle" }, "REUSED"),
      );
    }
    svg.append(g);
  }
  return svg;
}

function tokenRow(t) {
  return h("tr", { class: t.reused ? "reused" : "", dataset: { token: t.token_id } },
    h("td", { class: "mono" }, t.token_id),
    h("td", null, t.type ?? "—"),
    h("td", { class: "mono" }, t.parent_id ?? "—"),
    h("td", { class: "nowrap" }, fmtTime(t.issued_at)),
    h("td", { class: "nowrap" }, fmtTime(t.consumed_at)),
    h("td", { class: "nowrap" }, fmtTime(t.revoked_at)),
    h("td", null, t.reused ? badge("reused", "sev-critical") : ""));
}

export async function renderFamily(ctx, familyId, tenant) {
  const draw = async () => {
    const doc = await api(apiPath("families", familyId), { params: { tenant } });
    if (!ctx.alive()) return;
    const chain = doc.chain || [];
    const drawn = drawable(chain).length;
    const reused = chain.filter((t) => t.reused).map((t) => t.token_id);
    const holderPrefix = `${doc.tenant}/${doc.user || "-"}/`;
    fill(
      ctx.main,
      h("div", { class: "toolbar" }, h("h1", null, "Token family"),
        h("span", { class: "mono" }, doc.family_id),
        badge(doc.state || (doc.revoked_at ? "revoked" : "active"), `state-${doc.state}`)),
      section("Holder",
        h("dl", { class: "kv" },
          h("dt", null, "tenant"), h("dd", null, doc.tenant),
          h("dt", null, "user"), h("dd", null, doc.user ?? "—"),
          h("dt", null, "agent"), h("dd", null, doc.agent ?? "—"),
          h("dt", null, "client"), h("dd", null, doc.client_id ?? "—"),
          h("dt", null, "created"), h("dd", null, fmtTime(doc.created_at)),
          h("dt", null, "last seen"), h("dd", null, fmtTime(doc.last_seen_at)),
          h("dt", null, "revoked"), h("dd", null, doc.revoked_at
            ? [fmtTime(doc.revoked_at), " by ", orderLink(doc.revoked_by_order)] : "no"),
          h("dt", null, "why"), h("dd", { class: "reason" }, doc.revoke_reason ?? "—")),
        doc.user ? h("p", null, "Entities of this user: ",
          h("a", { href: `#/entities?q=${encodeURIComponent(holderPrefix)}`, class: "holder-entities" },
            "search ", holderPrefix)) : ""),
      section("Rotation chain",
        h("p", { class: "muted" },
          reused.length
            ? `Token ${reused.join(", ")} was presented again after it had been rotated (marked REUSED); the red dashed link is the replayed rotation.`
            : "No token of this family was reused.",
          drawn < chain.length ? ` ${chain.length - drawn} access tokens are not drawn.` : ""),
        h("div", { class: "chain-scroll" }, chainDrawing(chain))),
      section("Tokens", table(["token", "type", "parent", "issued", "rotated", "revoked", ""],
        chain.map(tokenRow), { empty: "no tokens", cls: "tokens" })),
      section("Detections", table(["time", "severity", "detector", "entity", "reason"],
        (doc.detections || []).map((d) => h("tr", null,
          h("td", { class: "nowrap" }, fmtTime(d.time)), h("td", null, severityBadge(d.severity)),
          h("td", { class: "mono" }, d.detector), h("td", null, entityLink(d.entity_key || d.entity)),
          h("td", { class: "reason" }, d.reason))),
        { empty: "no detections" })),
      section("Orders", table(["created", "order", "status", "action", "target"],
        (doc.orders || []).map((o) => h("tr", null,
          h("td", { class: "nowrap" }, fmtTime(o.created_at)), h("td", null, orderLink(o.id)),
          h("td", null, statusBadge(o.status)), h("td", null, o.action), h("td", null, targetText(o.target)))),
        { empty: "no orders" })),
    );
  };
  await draw();
  ctx.every(draw, 5000, { immediate: false });
}
