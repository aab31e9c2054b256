// Our only script: live updates (server-sent events) and the reply's segment count.
"use strict";
(function () {
  async function refresh() {
    const live = document.getElementById("live");
    if (!live) return;
    const r = await fetch(location.href, { credentials: "same-origin" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("live");
    if (fresh) { live.replaceWith(fresh); document.dispatchEvent(new Event("live-refreshed")); }
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
