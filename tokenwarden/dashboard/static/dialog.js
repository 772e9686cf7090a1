// A modal confirmation with an optional text field: resolves to the text (or "" when
// there is no field) on confirm, and to null on cancel.
import { fill, h } from "./dom.js";

export function confirmDialog({ id, title, body, field, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const input = field
      ? h("textarea", {
        id: `${id}-input`, name: "text", rows: 3, maxlength: 2000,
        required: field.required, placeholder: field.placeholder || "",
      })
      : null;
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const confirm = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirmLabel);
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h("form", { class: "dialog-form" },
      h("h2", null, title),
      body,
      input ? h("label", { for: `${id}-input` }, field.label) : "",
      input,
      error,
      h("div", { class: "actions" }, cancel, confirm));
    const dialog = h("dialog", { id, class: "confirm" }, form);
    let settled = false;
    const done = (value) => {
      if (settled) return;
      settled = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input ? input.value.trim() : "";
      if (field && field.required && !value) {
        fill(error, `${field.label} is required.`);
        error.hidden = false;
        input.focus();
        return;
      }
      done(value);
    });
    form.noValidate = true; // our own message instead of the browser's bubble
    cancel.addEventListener("click", () => done(null));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done(null);
    });
    document.body.append(dialog);
    dialog.showModal();
    (input || confirm).focus();
  });
}
