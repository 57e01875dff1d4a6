// The console's one script: uploads a wasm module from a file input (a form cannot send a file as the
// request body). Everything else works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = form.querySelector("output");
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) {
        out.textContent = "Choose a .wasm file first.";
        return;
      }
      out.textContent = "Uploading and compiling…";
      const response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/wasm", "x-csrf-token": form.dataset.csrf },
        body: file,
      });
      const body = await response.json().catch(() => ({ message: response.statusText }));
      if (!response.ok) {
        out.textContent = "Refused: " + body.message;
        return;
      }
      out.textContent = "Module " + body.id + " (" + body.interface + ", " + body.size + " bytes) is ready.";
      const target = document.getElementById(form.dataset.fills);
      if (target) target.value = body.id;
    });
  }
});
