// The console's one interaction: Make live, confirmed in a dialog with a reason, sent as a
// JSON POST with the page's CSRF token; the page reloads to show the new state.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("make-live");
  if (!dialog) return;
  const form = document.getElementById("make-live-form");
  const error = dialog.querySelector('[data-field="error"]');
  const base = document.querySelector('meta[name="console-base"]').content;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let version = null;
  document.querySelectorAll("button.make-live:not([disabled])").forEach((button) => {
    button.addEventListener("click", () => {
      version = button.dataset.version;
      dialog.querySelectorAll('[data-field="version"]').forEach((e) => { e.textContent = version; });
      error.textContent = "";
      form.reason.value = "";
      dialog.showModal();
    });
  });
  document.getElementById("make-live-confirm").addEventListener("click", async (event) => {
    event.preventDefault();
    if (!form.reason.value.trim()) { error.textContent = "Say why (it is recorded)."; return; }
    const response = await fetch(`${base}/api/versions/${encodeURIComponent(version)}/make-live`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ reason: form.reason.value }),
    });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) { error.textContent = body.error || `HTTP ${response.status}`; return; }
    dialog.close();
    window.location.reload();
  });
});
