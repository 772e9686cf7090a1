// The error banner under the header.
import { fill } from "./dom.js";

export function showBanner(message) {
  const banner = document.getElementById("banner");
  if (!message) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  fill(banner, message);
  banner.hidden = false;
}
