"""The inbox in a real browser (Debian's chromium driven by Playwright) against the running
service: missed calls replayed from the recorded AMI traces, texts through the real SMSC
(tests/integration/browser_service.py)."""
from tests.integration.browser_service import FIX, chromium_on_the_inbox, mo_after_bind, sign_in, sync_api

FIRST, SECOND = "+17375550188", "+15125550177"     # 02-no-answer.ami, then 03-abandoned.ami


def test_front_desk_in_a_real_browser(tmp_path, smsc):
    traces = [FIX / "02-no-answer.ami", FIX / "03-abandoned.ami"]
    with chromium_on_the_inbox(tmp_path, smsc, traces, FIRST) as (served, browser):
        base = served.base
        page = browser.new_page()
        page.goto(base + "/")                                   # sent to sign in first
        assert page.url.endswith("/login")
        sign_in(page, "maria")
        convs = page.locator(".convs .peer")
        sync_api.expect(convs).to_have_text([FIRST])            # Needs reply, from the replayed trace
        served.run.go_on.set()

        # the next missed call appears on the open page, no reload, within a second of being stored
        served.run.wait_rows("SELECT id FROM call WHERE caller = ?", SECOND)
        sync_api.expect(convs).to_have_text([FIRST, SECOND], timeout=1000)

        # a second agent in another browser sees maria claim the caller, live
        joe = browser.new_context().new_page()
        joe.goto(base + "/?view=open")
        sign_in(joe, "joe")
        joe.goto(base + "/?view=open")
        page.click(f"text={SECOND}")
        page.click("button:has-text('Claim')")
        sync_api.expect(page.locator(".state .owner")).to_have_text("maria")
        sync_api.expect(joe.locator(f".convs li:has-text('{SECOND}') .meta")).to_contain_text("maria", timeout=1000)

        # a reply typed in the box goes through the outbox to the real SMSC
        page.fill("#body", "We can fit you in at 3 today")
        sync_api.expect(page.locator("#segments")).to_have_text("GSM-7, 28 characters, 1 segment")
        page.click("text=Send")
        smsc.wait_for(lambda: any(m["text"] == "We can fit you in at 3 today"
                                  and m["destination_addr"].lstrip("+") == SECOND[1:]
                                  for m in smsc.messages()), timeout=10)
        served.run.wait_rows("SELECT id FROM message WHERE kind = 'agent' AND state = 'delivered'")

        # the caller answers with markup: it shows live, as text, and runs nothing
        mo_after_bind(smsc, SECOND[1:], "15125550140", '<script>window.pwned = 1</script><b>thanks!</b>')
        sync_api.expect(page.locator(".item.reply .body").last).to_have_text(
            '<script>window.pwned = 1</script><b>thanks!</b>', timeout=5000)
        assert page.evaluate("window.pwned") is None
        assert page.locator(".item.reply b").count() == 0

        # the service restarts: the open page's live stream reconnects by itself
        served.restart()
        mo_after_bind(smsc, SECOND[1:], "15125550140", "are you there?")
        sync_api.expect(page.locator(".item.reply .body").last).to_have_text("are you there?", timeout=8000)

        # a phone-sized screen: nothing wider than the screen
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        for path in ("/", f"/c/{SECOND}"):
            phone.goto(base + path)
            overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, path
        assert phone.locator("textarea#body").is_visible()
