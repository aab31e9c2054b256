"""Two agents at the front desk, each in their own browser context (Debian's chromium driven by
Playwright) against the running service: a missed call replayed from the recorded AMI trace,
texts and replies through the real SMSC. What each agent sees of the other: the owner, the
"is replying" lock, the ask-first on sending; snooze until the caller writes; the chime and
the notification of a reply; the keyboard; an opt-out settled in one click closes the box;
the phone-sized page."""

from tests.integration.browser_service import FIX, agent, chromium_on_the_inbox, mo_after_bind, sync_api, until
CALLER = "+17375550188"          # 02-no-answer.ami
LINE_DIGITS = "15125550140"

# What the page passes to the browser's own Notification, seen from the page: the real one
# still runs (the permission is granted to the context, as an agent grants it once).
SPY = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  if (!Real) return;
  class Spy extends Real {
    constructor(title, opts) { super(title, opts); window.__notes.push({ title, body: opts && opts.body }); }
  }
  window.Notification = Spy;
})();
"""


def ready(page):
    """The page's own script has run: keys pressed while it still loads reach no handler (the
    heading shows while the document is still being parsed, before the deferred scripts)."""
    page.wait_for_load_state("load")


def wait_true(page, expr, timeout=3.0):
    """Until the page says expr is true."""
    assert until(page, lambda: page.evaluate(expr), timeout), f"not true within {timeout:g} s: {expr}"


def test_two_agents_at_the_front_desk(tmp_path, smsc):
    with chromium_on_the_inbox(tmp_path, smsc, [FIX / "02-no-answer.ami"], CALLER,
                               args=["--autoplay-policy=no-user-gesture-required"]) as (served, browser):
        base, run = served.base, served.run
        maria, joe = agent(browser, base, "maria", SPY), agent(browser, base, "joe", SPY)
        expect = sync_api.expect
        for page in (maria, joe):
            expect(page.locator(".convs .peer")).to_have_text([CALLER])

        # keyboard on the list: j selects the first caller, Enter opens it
        ready(maria)
        maria.keyboard.press("j")
        expect(maria.locator(".convs li a.selected .peer")).to_have_text(CALLER)
        maria.keyboard.press("Enter")
        expect(maria.locator("h1.peer")).to_have_text(CALLER)

        # maria claims; joe's list shows her as the owner, live
        joe.goto(base + "/?view=open")
        maria.click("button:has-text('Claim')")
        expect(maria.locator(".state .owner")).to_have_text("maria")
        expect(joe.locator(f".convs li:has-text('{CALLER}') .meta")).to_contain_text("maria", timeout=1000)
        ready(maria)

        # maria types: joe sees she is replying, on the list and on the conversation, live
        maria.keyboard.press("r")                        # r: to the reply box
        assert maria.evaluate("document.activeElement.id") == "body"
        maria.keyboard.type("Checking the calendar")
        expect(joe.locator(f".convs li:has-text('{CALLER}') .replying")).to_have_text(
            "maria is replying", timeout=1000)
        joe.goto(base + f"/c/{CALLER}")
        expect(joe.locator(".replying")).to_contain_text("maria is replying")
        expect(maria.locator(".replying")).to_have_count(0)          # her own lock is no news to her

        # joe sends anyway: asked first, then it goes through the outbox to the real SMSC
        joe.fill("#body", "Joe here: we have 3pm free")
        joe.click("button:has-text('Send')")
        expect(joe.locator(".error")).to_have_text("maria is replying to this caller right now.")
        expect(joe.locator("#body")).to_have_value("Joe here: we have 3pm free")
        joe.click("button:has-text('Send anyway')")
        smsc.wait_for(lambda: any(m["text"] == "Joe here: we have 3pm free" for m in smsc.messages()), timeout=10)
        for page in (maria, joe):                    # its receipt turns it delivered on both pages
            expect(page.locator(".item.text:has-text('Joe here') .detail")).to_have_text("delivered",
                                                                                           timeout=8000)
        expect(maria.locator(".state .owner")).to_have_text("joe")   # the last who answered

        # maria clears her box: the lock is gone for joe, live
        maria.fill("#body", "")
        maria.locator("#body").dispatch_event("input")
        expect(joe.locator(".replying")).to_have_count(0, timeout=2000)

        # s (outside a text field) snoozes until the caller writes; typing an "s" does not
        maria.locator("#body").press("s")
        expect(maria.locator(".state")).to_contain_text("Open")
        maria.locator("h1.peer").click()
        maria.keyboard.press("s")
        expect(maria.locator(".state")).to_contain_text("Snoozed until the caller writes or calls")

        # the caller writes markup: it reopens the conversation, shows as text on both pages,
        # and pops a notification (and the chime) in both browsers
        mo_after_bind(smsc, CALLER[1:], LINE_DIGITS, '<script>window.pwned = 1</script>see you at 3')
        for page in (maria, joe):
            expect(page.locator(".item.reply .body").last).to_have_text(
                "<script>window.pwned = 1</script>see you at 3", timeout=5000)
            expect(page.locator(".state")).to_contain_text("Open")
            assert page.evaluate("window.pwned") is None
            expect(page.locator("#toast")).to_contain_text(f"New reply from {CALLER}")
            wait_true(page, "window.__notes.length > 0")
            assert page.evaluate("window.__notes[0]") == {
                "title": f"Reply from {CALLER}", "body": "<script>window.pwned = 1</script>see you at 3"}
        wait_true(maria, "Number(document.body.dataset.chimes || 0) >= 1")

        # a private note with n; e marks the conversation done
        ready(maria)
        maria.locator("h1.peer").click()
        maria.keyboard.press("n")
        maria.keyboard.type("Confirmed 3pm by text")
        maria.click("button:has-text('Add note')")
        expect(joe.locator(".item.note .body")).to_have_text("Confirmed 3pm by text", timeout=2000)
        ready(maria)
        maria.locator("h1.peer").click()
        maria.keyboard.press("e")
        expect(maria.locator(".state")).to_contain_text("Done")

        # a reply that may mean stop: one click opts the caller out, and the box says why it is closed
        mo_after_bind(smsc, CALLER[1:], LINE_DIGITS, "I want you to stop")
        expect(joe.locator(".item.reply .body").last).to_have_text("I want you to stop", timeout=5000)
        joe.reload()
        joe.click("button:has-text('Opt out')")
        expect(joe.locator(".closed")).to_contain_text("This caller opted out")
        expect(joe.locator("textarea#body")).to_have_count(0)

        # the phone-sized screen: no horizontal scrolling, reply box and send within thumb's reach
        phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        phone.context.add_cookies(maria.context.cookies())
        other = "+15125550177"
        mo_after_bind(smsc, other[1:], LINE_DIGITS, "Is the office open on Saturday? " + "x" * 100)
        run.wait_rows("SELECT id FROM message WHERE peer = ?", other)
        # j/k on a caller's page: the next and previous caller of the list the agent came from
        maria.goto(base + "/?view=open")
        expect(maria.locator(".convs .peer")).to_have_count(2)
        order = maria.locator(".convs .peer").all_inner_texts()
        maria.keyboard.press("j")
        maria.keyboard.press("Enter")
        expect(maria.locator("h1.peer")).to_have_text(order[0])
        ready(maria)
        maria.keyboard.press("j")
        expect(maria.locator("h1.peer")).to_have_text(order[1])
        ready(maria)
        maria.keyboard.press("k")
        expect(maria.locator("h1.peer")).to_have_text(order[0])

        for path in ("/", f"/c/{CALLER}", f"/c/{other}", "/saved", "/me"):
            phone.goto(base + path)
            assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), path
        phone.goto(base + f"/c/{other}")
        for target in ("textarea#body", "#replyform button[type=submit]"):
            box = phone.locator(target).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, target
            assert box["y"] + box["height"] <= 844, target        # the sticky reply box: on screen
        callback = phone.locator("button:has-text('Call back')")
        if callback.count():                                      # the callback feature's button
            cb = callback.first.bounding_box()
            assert cb["x"] + cb["width"] <= 390
