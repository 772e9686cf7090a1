// The admin API client: every call carries the signed-in credential as a bearer token.
// The credential lives in sessionStorage only (gone when the tab closes).

const STORAGE_KEY = "tokenwarden.credential";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function credential() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function setCredential(value) {
  sessionStorage.setItem(STORAGE_KEY, value);
}

export function clearCredential() {
  sessionStorage.removeItem(STORAGE_KEY);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** Call the API; JSON in and out. Throws ApiError (401 also tells the app to sign out). */
export async function api(path, { method = "GET", params, body, token } = {}) {
  const cred = token || credential();
  const headers = { Accept: "application/json" };
  if (cred) headers.Authorization = `Bearer ${cred}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path + query(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch (err) {
    throw new ApiError(0, "network", "the service does not answer");
  }
  let doc = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) doc = await response.json();
  if (!response.ok) {
    const err = new ApiError(response.status, doc && doc.error, doc && doc.detail);
    if (response.status === 401 && !token) {
      window.dispatchEvent(new CustomEvent("tw-unauthorized", { detail: err.message }));
    }
    throw err;
  }
  return doc;
}

/** A list endpoint's items, whether it answers a bare list or {items: [...]}. */
export function itemsOf(doc) {
  if (Array.isArray(doc)) return doc;
  if (doc && Array.isArray(doc.items)) return doc.items;
  return [];
}

export function apiPath(...parts) {
  return "/v1/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}
