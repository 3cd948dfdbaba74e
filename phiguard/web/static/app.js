// phiguard console script: loaded from /static (the CSP forbids inline script).
"use strict";

const csrf = () => document.body.dataset.csrf || "";

function b64uToBuf(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}
function bufToB64u(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
async function postJSON(url, body) {
  const resp = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.detail || ("HTTP " + resp.status));
  return data;
}
function showError(id, err) {
  const el = document.getElementById(id);
  if (el) { el.textContent = String(err.message || err); el.hidden = false; }
}

async function webauthnLogin(button) {
  try {
    const opts = await postJSON("/login/webauthn/options");
    opts.challenge = b64uToBuf(opts.challenge);
    (opts.allowCredentials || []).forEach(c => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.get({publicKey: opts});
    const r = cred.response;
    const result = await postJSON("/login/webauthn", {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      response: {
        authenticatorData: bufToB64u(r.authenticatorData),
        clientDataJSON: bufToB64u(r.clientDataJSON),
        signature: bufToB64u(r.signature),
        userHandle: r.userHandle ? bufToB64u(r.userHandle) : null,
      },
      clientExtensionResults: cred.getClientExtensionResults(),
      next: button.dataset.next || "/",
    });
    window.location.assign(result.next || "/");
  } catch (err) { showError("webauthn-error", err); }
}

async function webauthnRegister() {
  try {
    const opts = await postJSON("/account/keys/options");
    opts.challenge = b64uToBuf(opts.challenge);
    opts.user.id = b64uToBuf(opts.user.id);
    (opts.excludeCredentials || []).forEach(c => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.create({publicKey: opts});
    const r = cred.response;
    const nameInput = document.getElementById("key-name");
    await postJSON("/account/keys", {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      response: {
        attestationObject: bufToB64u(r.attestationObject),
        clientDataJSON: bufToB64u(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults(),
      name: nameInput ? nameInput.value : "security key",
    });
    window.location.assign("/account?msg=key-added");
  } catch (err) { showError("webauthn-error", err); }
}

// Progress of a running leak scan: the page names a JSON URL to poll.
function pollProgress(el) {
  const url = el.dataset.pollUrl;
  const bar = el.querySelector("progress");
  const label = el.querySelector(".progress-label");
  const tick = async () => {
    try {
      const resp = await fetch(url, {credentials: "same-origin"});
      const data = await resp.json();
      if (bar && typeof data.fraction === "number") bar.value = data.fraction;
      if (label) label.textContent = data.message || data.state || "";
      if (data.state === "done" || data.state === "failed") { window.location.reload(); return; }
    } catch (err) { /* keep polling */ }
    setTimeout(tick, 700);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const login = document.getElementById("webauthn-login");
  if (login) login.addEventListener("click", () => webauthnLogin(login));
  const reg = document.getElementById("webauthn-register");
  if (reg) reg.addEventListener("click", webauthnRegister);
  document.querySelectorAll("form[data-confirm]").forEach(form => {
    form.addEventListener("submit", ev => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
  document.querySelectorAll("[data-poll-url]").forEach(pollProgress);
  document.querySelectorAll("[data-autosubmit]").forEach(el => {
    el.addEventListener("change", () => el.form && el.form.submit());
  });
});
