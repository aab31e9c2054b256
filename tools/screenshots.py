"""The README's screenshots, from the real browser: runs `pbx-textback demo` (its own store in a
temp dir), signs in with the login it prints, lets the demo's calls, texts and replies arrive,
and saves PNGs into docs/ at laptop size (1280x800) and phone size (390x844), with Debian's
chromium driven by Playwright (executable_path: Playwright's own browser download is not needed).

    .venv/bin/python tools/screenshots.py [--chromium /usr/bin/chromium] [--wait 12]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SIZES = {"laptop": (1280, 800), "phone": (390, 844)}


def start_demo(state: str) -> tuple[subprocess.Popen, str, str, str]:
    env = dict(os.environ, XDG_STATE_HOME=state)
    p = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "demo", "--pace", "0.3"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for _ in range(40):
        m = re.match(r"^demo: the inbox is at (\S+)  sign in as (\S+) / (\S+)$", p.stdout.readline())
        if m:
            return p, *m.groups()
    p.kill()
    raise SystemExit("the demo printed no inbox URL")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--wait", type=float, default=12.0, help="seconds of demo traffic before the pictures")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pbx-textback-shots-") as state:
        demo, url, name, password = start_demo(state)
        try:
            time.sleep(a.wait)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox"])
                for size, (w, h) in SIZES.items():
                    page = browser.new_context(viewport={"width": w, "height": h}).new_page()
                    page.goto(url)
                    page.fill("input[name=name]", name)
                    page.fill("input[name=password]", password)
                    page.click("button[type=submit]")
                    page.wait_for_url(url)
                    page.goto(url + "?view=open")
                    page.screenshot(path=str(DOCS / f"inbox-{size}.png"))
                    replied = page.locator("ul.convs a", has_text=re.compile(r"[1-9] repl"))
                    first = replied.first if replied.count() else page.locator("ul.convs a").first
                    first.click()
                    page.wait_for_selector("ol.timeline")
                    page.screenshot(path=str(DOCS / f"conversation-{size}.png"))
                    page.context.close()
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)
    for f in sorted(DOCS.glob("*.png")):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
