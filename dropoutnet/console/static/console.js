// The console's edits, each a JSON POST with the page's CSRF token after which the page
// reloads to show the new state: Make live (confirmed in a dialog with a reason), and an
// experiment's start (its form) and stop (a button that asks for the reason).
"use strict";
async function postJson(path, body) {
  const base = document.querySelector('meta[name="console-base"]').content;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const response = await fetch(`${base}${path}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  return response.ok ? null : (answer.error || `HTTP ${response.status}`);
}
document.addEventListener("DOMContentLoaded", () => {
  const start = document.querySelector("form.start-experiment");
  if (start) {
    start.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = await postJson(start.dataset.api, {
        challenger: start.challenger.value, share: Number(start.share.value),
        reason: start.reason.value,
      });
      if (error) { start.querySelector('[data-field="error"]').textContent = error; return; }
      window.location.reload();
    });
  }
  document.querySelectorAll("button.post:not([disabled])").forEach((button) => {
    button.addEventListener("click", async () => {
      const reason = window.prompt(`${button.dataset.ask}. Why?`);
      if (!reason) return;
      const error = await postJson(button.dataset.api, { reason });
      if (error) { window.alert(error); return; }
      window.location.reload();
    });
  });

  const dialog = document.getElementById("make-live");
  if (!dialog) return;
  const form = document.getElementById("make-live-form");
  const error = dialog.querySelector('[data-field="error"]');
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
    const failed = await postJson(`/api/versions/${encodeURIComponent(version)}/make-live`,
                                  { reason: form.reason.value });
    if (failed) { error.textContent = failed; return; }
    dialog.close();
    window.location.reload();
  });
});
