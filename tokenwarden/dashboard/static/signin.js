// Sign-in: paste an API key (twk_…) or an OIDC bearer token; /v1/whoami validates it.
import { api, setCredential } from "./api.js";
import { fill, h } from "./dom.js";

export function renderSignIn(main, { onSignedIn }) {
  const input = h("textarea", {
    id: "credential",
    name: "credential",
    rows: 3,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "twk_… or eyJ…",
    "aria-describedby": "credential-help",
  });
  const error = h("p", { class: "error", id: "signin-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "signin panel", id: "signin" },
    h("h1", null, "Sign in"),
    h("label", { for: "credential" }, "API key or bearer token"),
    input,
    h(
      "p",
      { class: "muted", id: "credential-help" },
      "It is kept in this tab only (sessionStorage) and sent as ",
      h("code", null, "Authorization: Bearer …"),
      ". Its tenant and roles decide what you see and may do.",
    ),
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      fill(error, "Paste a credential first.");
      error.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      const principal = await api("/v1/whoami", { token: value });
      setCredential(value);
      input.value = "";
      onSignedIn(principal);
    } catch (err) {
      fill(error, err.status === 401 ? "That credential was not accepted." : err.message);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  fill(main, form);
  input.focus();
}
