// Our only script: live updates (server-sent events) and the reply's segment count.
"use strict";
(function () {
  // One refresh in flight at a time, and a change that comes meanwhile asks for one more after
  // it: the answer in flight may have been rendered before that change was stored. (Two at
  // once lost the newer: the first to land replaced the #live node the other one then
  // replaced while it was already out of the page, so a reply showed only at the next change.)
  let busy = false, again = false, failed = 0;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do { again = false; await fetchLive(); } while (again);
    } finally { busy = false; }
  }
  async function fetchLive() {
    if (!document.getElementById("live")) return;
    let html;
    try {
      const r = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      html = await r.text();
    } catch (e) {
      // a busy or restarting server: try again a few times (a reconnect catches up anyway)
      if (++failed <= 5) setTimeout(refresh, 1000 * failed);
      return;
    }
    failed = 0;
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
    const live = document.getElementById("live");      // the node on the page now
    if (fresh && live) { live.replaceWith(fresh); document.dispatchEvent(new Event("live-refreshed")); }
  }
  function listen() {
    // after: the newest reply this page knew of when it was made (a reply in between still chimes)
    const es = new EventSource("/events?after=" + encodeURIComponent(document.body.dataset.heard || ""));
    es.addEventListener("change", refresh);
    // a caller's reply: the chime and notification (desk.js)
    es.addEventListener("reply", (e) => { if (window.deskReply) window.deskReply(JSON.parse(e.data)); });
    // after a restart or a dropped network EventSource reconnects by itself: catch up then
    es.addEventListener("open", refresh);
  }
  const body = document.getElementById("body");
  const seg = document.getElementById("segments");
  let pending = 0;
  async function count() {
    const mine = ++pending;
    const r = await fetch("/sms-info?text=" + encodeURIComponent(body.value), { credentials: "same-origin" });
    if (!r.ok || mine !== pending) return;
    const i = await r.json();
    seg.textContent = body.value ? `${i.encoding === "ucs2" ? "Unicode" : "GSM-7"}, ${i.units} characters, ${i.segments} segment${i.segments === 1 ? "" : "s"}` : "";
  }
  if (body && seg) { body.addEventListener("input", count); count(); }
  listen();
})();
