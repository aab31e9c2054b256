// Admin pages: the live preview of a template as you type (the text for a sample caller, its
// lint, encoding and segment count), computed by the server with the code that sends texts.
"use strict";
(function () {
  const sample = document.getElementById("sample");
  const sampleName = document.getElementById("sample-name");
  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }
  function watch(box) {
    const area = box.querySelector("textarea");
    let latest = 0;
    async function update() {
      const mine = ++latest;
      const q = new URLSearchParams({
        line: box.dataset.line, reason: box.dataset.reason, first: box.dataset.first,
        template: area.value || box.dataset.fallback, caller: sample ? sample.value : "",
        name: sampleName ? sampleName.value : "",
      });
      const r = await fetch("/admin/preview?" + q, { credentials: "same-origin" });
      if (!r.ok || mine !== latest) return;        // an older answer never overwrites a newer one
      const p = await r.json();
      box.querySelector(".preview").textContent = p.text;
      box.querySelector(".sms").textContent =
        `${p.sms.encoding}, ${plural(p.sms.units, "character")}, ${plural(p.sms.segments, "segment")}` +
        (p.sms.ucs2_chars.length ? ` (Unicode because of ${p.sms.ucs2_chars.join(" ")})` : "");
      const lint = box.querySelector(".lint");
      lint.replaceChildren();
      const issues = (p.error ? [{ level: "error", message: p.error }] : []).concat(p.lint);
      for (const i of issues) {
        const li = document.createElement("li");
        li.className = "lint-" + i.level;
        li.textContent = i.message;
        lint.appendChild(li);
      }
    }
    let timer = 0;
    function soon() {                      // one request once the typing pauses, not one per key
      clearTimeout(timer);
      timer = setTimeout(update, 120);
    }
    area.addEventListener("input", soon);
    return soon;
  }
  const updates = Array.from(document.querySelectorAll(".tpl")).map(watch);
  for (const el of [sample, sampleName]) {
    if (el) el.addEventListener("input", () => updates.forEach((u) => u()));
  }
})();
