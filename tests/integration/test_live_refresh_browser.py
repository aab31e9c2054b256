"""A caller's reply that arrives while the open conversation's page is still fetching its last
refresh must show on the timeline all the same (Debian's chromium driven by Playwright against
the running service; the reply through the real SMSC).

A slow server or network is played by holding the page's own refresh fetches in page.route:
each is answered with what the server rendered when the page asked, released when the test says.
The old script started a second fetch on the reply's change, and the first answer to land
replaced the timeline node the second one meant to replace, so the second (with the reply) went
nowhere and the agent did not see the reply until the next change (CI: once in three runs)."""

from tests.integration.browser_service import FIX, agent, chromium_on_the_inbox, mo_after_bind, sync_api, until
CALLER = "+17375550188"          # 02-no-answer.ami
LINE_DIGITS = "15125550140"

# counts the page's applied refreshes, and the notifications it raised
WATCH = """
(() => {
  window.__refreshed = 0;
  document.addEventListener("live-refreshed", () => { window.__refreshed += 1; });
  window.__notes = [];
  const Real = window.Notification;
  if (!Real) return;
  class Spy extends Real {
    constructor(title, opts) { super(title, opts); window.__notes.push(title); }
  }
  window.Notification = Spy;
})();
"""


def test_a_reply_during_a_slow_refresh_still_shows(tmp_path, smsc):
    with chromium_on_the_inbox(tmp_path, smsc, [FIX / "02-no-answer.ami"], CALLER) as (served, browser):
        base = served.base
        page = agent(browser, base, "maria", WATCH)
        expect = sync_api.expect
        expect(page.locator(".convs .peer")).to_have_text([CALLER])

        held, hold = [], [True]

        def slow(route):
            # the page's refresh of the timeline (not the page load itself): rendered now,
            # delivered when the test releases it
            if route.request.resource_type != "fetch":
                return route.continue_()
            answer = route.fetch()
            if hold[0]:
                held.append((route, answer))
            else:
                route.fulfill(response=answer)

        page.route(f"{base}/c/{CALLER}", slow)
        page.goto(base + f"/c/{CALLER}")
        expect(page.locator("h1.peer")).to_have_text(CALLER)
        # the stream's open asks for a refresh: rendered before the reply, held
        assert until(page, lambda: len(held) >= 1, 10), "the page never refreshed on its stream's open"
        expect(page.locator(".item.reply")).to_have_count(0)

        mo_after_bind(smsc, CALLER[1:], LINE_DIGITS, "Running ten minutes late")
        # the reply's change and notification reached the page while its refresh is in flight
        assert until(page, lambda: page.evaluate("window.__notes.length") > 0, 10), "no notification of the reply"
        # the old script sent a second fetch at once; give it the time to reach the route
        until(page, lambda: len(held) >= 2, 1.0)
        hold[0] = False
        for route, answer in held:                    # the slow answers land, oldest first
            before = page.evaluate("window.__refreshed")
            route.fulfill(response=answer)
            assert until(page, lambda: page.evaluate("window.__refreshed") > before, 5), "the answer was not applied"
        # what the agent sees in the end: the reply, on the timeline
        expect(page.locator(".item.reply .body")).to_have_text("Running ten minutes late", timeout=5000)
        expect(page.locator(".state")).to_contain_text("Open")
