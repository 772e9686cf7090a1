// DOM helpers. Server data only ever reaches the page as text (textContent) or as an
// attribute value through setAttribute on an allow-listed attribute: never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";
const SAFE_ATTRS = new Set([
  "class", "id", "title", "role", "type", "name", "value", "placeholder", "for",
  "autocomplete", "required", "minlength", "maxlength", "rows", "cols", "disabled",
  "checked", "hidden", "colspan", "scope", "lang", "tabindex", "spellcheck",
  "aria-label", "aria-live", "aria-hidden", "aria-describedby", "aria-current",
]);

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "href") {
      el.setAttribute("href", safeHref(value));
    } else if (key === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) el.dataset[name] = String(v);
    } else if (SAFE_ATTRS.has(key)) {
      el.setAttribute(key, value === true ? "" : String(value));
    } else {
      throw new Error(`attribute not allowed: ${key}`);
    }
  }
}

/** Only in-page routes ("#/…") are ever linked: a server value cannot become a URL. */
export function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") ? text : "#/";
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_ATTRS = new Set([
  "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx",
  "d", "points", "fill", "stroke", "stroke-width", "stroke-dasharray", "text-anchor",
  "dominant-baseline", "class", "role", "aria-label", "transform", "font-size",
  "preserveAspectRatio", "marker-end", "opacity",
]);

/** An SVG element; text children become text nodes. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) el.dataset[name] = String(v);
    } else if (SVG_ATTRS.has(key)) {
      el.setAttribute(key, String(value));
    } else {
      throw new Error(`svg attribute not allowed: ${key}`);
    }
  }
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "2026-11-23 08:00:00Z" from an ISO time (UTC, which on-call compares across teams). */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(11, 19);
}

/** A table with a header row and one row per item (cells: arrays of nodes or text). */
export function table(columns, rows, { empty = "nothing here", cls = "" } = {}) {
  const head = h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c))));
  const body = h("tbody");
  if (rows.length === 0) {
    body.append(h("tr", { class: "empty" }, h("td", { colspan: columns.length }, empty)));
  } else {
    for (const row of rows) body.append(row);
  }
  return h("table", { class: `grid ${cls}`.trim() }, head, body);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`.trim() }, text);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}

/** Route links: "#/entity/<key>" etc., each part URI-encoded. */
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function link(text, href, attrs = {}) {
  return h("a", { ...attrs, href }, text);
}
