// The front desk's part of our script: who is replying (locks), saved replies, the chime and
// notification for callers' replies, and the keyboard. Loaded after app.js.
"use strict";
(function () {
  const csrfInput = document.querySelector("input[name=csrf]");
  const csrf = csrfInput ? csrfInput.value : "";

  // ---- "‹agent› is replying": hold the lock while typing, let go when cleared or leaving ----
  const form = document.getElementById("replyform");
  const body = document.getElementById("body");
  let held = false, lastPing = 0;
  function ping(active) {
    const data = new FormData();
    data.append("csrf", csrf);
    data.append("active", active ? "1" : "0");
    return fetch(`/c/${form.dataset.peer}/typing`, { method: "POST", body: data, credentials: "same-origin" });
  }
  if (form && body) {
    body.addEventListener("input", () => {
      const now = Date.now();
      if (!body.value.trim()) {
        if (held) { held = false; ping(false); }
      } else if (!held || now - lastPing > 20000) {      // a heartbeat keeps the lock from lapsing
        held = true; lastPing = now; ping(true);
      }
    });
    window.addEventListener("pagehide", () => {
      if (!held) return;
      const data = new FormData();
      data.append("csrf", csrf); data.append("active", "0");
      navigator.sendBeacon(`/c/${form.dataset.peer}/typing`, data);
    });
  }

  // ---- saved replies: filled in for this caller by the server's sandboxed templates ----
  const pick = document.getElementById("saved");
  if (pick && body) {
    pick.addEventListener("change", async () => {
      if (!pick.value) return;
      const r = await fetch(`/c/${pick.dataset.peer}/saved/${pick.value}`, { credentials: "same-origin" });
      const got = await r.json();
      if (got.text) { body.value = got.text; body.dispatchEvent(new Event("input")); body.focus(); }
      else if (got.error) { alert(got.error); }
      pick.value = "";
    });
  }

  // ---- a caller's reply: chime, notification, and a note on the page ----
  let audio = null;
  function chime() {
    audio = audio || new Audio("/sound/reply.wav");
    audio.currentTime = 0;
    const played = audio.play();
    if (played) played.then(() => { document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1); })
                      .catch(() => {});          // no sound until the page was clicked once: the notice still shows
  }
  function toast(r) {
    let t = document.getElementById("toast");
    if (!t) { t = document.createElement("div"); t.id = "toast"; t.className = "toast"; t.setAttribute("role", "status"); document.body.appendChild(t); }
    t.textContent = "";
    const a = document.createElement("a");
    a.href = r.url;
    a.textContent = `New reply from ${r.peer}` + (r.owner ? ` (${r.owner})` : "");
    t.appendChild(a);
    clearTimeout(t.hideTimer);
    t.hideTimer = setTimeout(() => t.remove(), 15000);
  }
  window.deskReply = function (r) {
    chime();
    toast(r);
    if ("Notification" in window && Notification.permission === "granted") {
      const n = new Notification(`Reply from ${r.peer}`, { body: r.body, tag: `reply-${r.id}` });
      n.onclick = () => { window.focus(); location.href = r.url; };
    }
  };
  const allow = document.getElementById("allow-notify");
  const state = document.getElementById("notify-state");
  function showState() { if (state) state.textContent = "Notification" in window ? `(${Notification.permission})` : "(not supported here)"; }
  if (allow) {
    allow.addEventListener("click", async () => { if ("Notification" in window) await Notification.requestPermission(); showState(); chime(); });
    showState();
  }

  // ---- keyboard: j/k next/previous, r reply, n note, e done, s snooze; never inside a text field ----
  let sel = -1;
  function rows() {
    const list = document.querySelectorAll(".convs li a");
    return list.length ? list : document.querySelectorAll(".timeline .item");
  }
  function select(i) {
    const all = rows();
    if (!all.length) return;
    sel = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((el, j) => el.classList.toggle("selected", j === sel));
    const el = all[sel];
    if (el.tagName === "A") el.focus(); else el.scrollIntoView({ block: "nearest" });
  }
  // the list an agent works through: j/k on a caller's page go to the next/previous one in it
  function remember() {
    const links = document.querySelectorAll(".convs li a");
    if (links.length) sessionStorage.setItem("deskList", JSON.stringify([...links].map((a) => a.getAttribute("href"))));
  }
  function neighbour(step) {
    if (!document.getElementById("live") || !document.querySelector("h1.peer")) return false;
    const list = JSON.parse(sessionStorage.getItem("deskList") || "[]");
    const i = list.indexOf(location.pathname);
    if (i < 0 || !list[i + step]) return false;
    location.href = list[i + step];
    return true;
  }
  remember();
  document.addEventListener("live-refreshed", () => { remember(); if (sel >= 0) select(sel); });
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const focus = (id) => { const el = document.getElementById(id); if (el) { e.preventDefault(); el.focus(); } };
    const click = (key) => { const el = document.querySelector(`button[data-key="${key}"]`); if (el) { e.preventDefault(); el.click(); } };
    switch (e.key) {
      case "j": e.preventDefault(); if (!neighbour(1)) select(sel + 1); break;
      case "k": e.preventDefault(); if (!neighbour(-1)) select(sel < 0 ? 0 : sel - 1); break;
      case "r": focus("body"); break;
      case "n": focus("note"); break;
      case "e": click("e"); break;
      case "s": click("s"); break;
    }
  });
})();
