// The dashboard's shell: sign-in state, the hash router, polling, the error banner.
import { api, clearCredential, credential, ApiError } from "./api.js";
import { fill, h } from "./dom.js";
import { showBanner } from "./banner.js";
import { renderSignIn } from "./signin.js";
import { renderFeed } from "./feed.js";
import { renderEntities, renderEntity } from "./entity.js";
import { renderFamily } from "./family.js";
import { renderKillSwitches } from "./switches.js";
import { renderAlerts } from "./alerts.js";
import { renderPolicy } from "./policy.js";
import { renderOrder } from "./order.js";

const POLL_MS = 2000;
const RANK = { viewer: 0, responder: 1, admin: 2 };

const VIEWS = {
  feed: renderFeed,
  entities: renderEntities,
  entity: renderEntity,
  family: renderFamily,
  "kill-switches": renderKillSwitches,
  alerts: renderAlerts,
  policy: renderPolicy,
  order: renderOrder,
};

const state = { principal: null, generation: 0 };

function $(id) {
  return document.getElementById(id);
}

function hasRole(principal, role) {
  return (principal?.roles || []).some((r) => (RANK[r] ?? -1) >= RANK[role]);
}

function describe(principal) {
  const tenant = principal.tenant === null ? "all tenants" : `tenant ${principal.tenant}`;
  const roles = principal.roles.length ? principal.roles.join(", ") : "no role";
  return `${principal.subject} · ${tenant} · ${roles}`;
}

function setSignedIn(principal) {
  state.principal = principal;
  $("nav").hidden = !principal;
  $("who").hidden = !principal;
  if (principal) {
    fill($("who-text"), describe(principal));
    $("who-text").dataset.tenant = principal.tenant ?? "*";
    $("who-text").dataset.roles = principal.roles.join(" ");
  } else {
    fill($("who-text"));
  }
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?");
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const query = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
  const [name, ...rest] = path.split("/");
  const params = rest.filter((p) => p !== "").map((p) => decodeURIComponent(p));
  return { name: name || "feed", params, query };
}

function markNav(name) {
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

/** The context a view renders with: where to draw, who is signed in, and a poller that
 * stops by itself when the user navigates away. */
function context(generation, query) {
  const alive = () => state.generation === generation;
  return {
    main: $("view"),
    query,
    principal: state.principal,
    canRespond: hasRole(state.principal, "responder"),
    isGlobalAdmin: hasRole(state.principal, "admin") && state.principal.tenant === null,
    alive,
    every(fn, ms = POLL_MS, { immediate = true } = {}) {
      const tick = async () => {
        if (!alive()) return;
        try {
          await fn();
          if (alive()) showBanner(null);
        } catch (err) {
          if (alive()) report(err);
        }
        if (alive()) setTimeout(tick, ms);
      };
      if (immediate) tick();
      else setTimeout(tick, ms);
    },
    report,
  };
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) return; // handled by tw-unauthorized
  const text = err instanceof ApiError
    ? `${err.status ? err.status + " " : ""}${err.message}`
    : `unexpected error: ${err && err.message}`;
  showBanner(text);
}

async function render() {
  state.generation += 1;
  const generation = state.generation;
  for (const open of document.querySelectorAll("dialog")) {
    open.dispatchEvent(new Event("cancel", { cancelable: true })); // a confirmation left behind
  }
  showBanner(null);
  const main = $("view");
  if (!state.principal) {
    markNav(null);
    renderSignIn(main, { onSignedIn });
    return;
  }
  const { name, params, query } = parseRoute();
  const view = VIEWS[name] || renderFeed;
  markNav(VIEWS[name] ? name : "feed");
  fill(main, h("p", { class: "muted" }, "loading…"));
  try {
    await view(context(generation, query), ...params);
  } catch (err) {
    if (state.generation === generation) {
      fill(main, h("p", { class: "error" }, err instanceof ApiError ? err.message : String(err)));
      report(err);
    }
  }
}

function onSignedIn(principal) {
  setSignedIn(principal);
  if (!location.hash || location.hash === "#/" || location.hash.startsWith("#/signin")) {
    location.hash = "#/feed";
  } else {
    render();
  }
}

function signOut(message) {
  clearCredential();
  setSignedIn(null);
  render().then(() => {
    if (message) showBanner(message);
  });
}

async function boot() {
  $("sign-out").addEventListener("click", () => signOut(null));
  window.addEventListener("hashchange", () => render());
  window.addEventListener("tw-unauthorized", (e) =>
    signOut(`Signed out: the credential was refused (${e.detail}).`),
  );
  if (credential()) {
    try {
      setSignedIn(await api("/v1/whoami", { token: credential() }));
    } catch (err) {
      clearCredential();
      setSignedIn(null);
    }
  }
  await render();
}

boot();
