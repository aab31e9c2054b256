"""The webhook feed on a real SQLite store: which stored changes become which events, and
that seeing the same rows again (the scans' overlap, a restart) adds nothing."""
import json

import pytest
from hypothesis import given, strategies as hs

from pbx_textback.config import HOOK_EVENTS, ConfigError, loads
from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.hooks import events as ev
from pbx_textback.hooks.feed import Feed
from pbx_textback.hooks.sign import headers, new_secret
from pbx_textback.store import callbacks as cb
from pbx_textback.store import db as st
from pbx_textback.store import hooks as sh
from pbx_textback.store import web as sw

PEER, LINE = "+15125550177", "+15125550140"


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def feed(store_factory):
    """On SQLite and on a real PostgreSQL."""
    store = store_factory()
    clock = Clock()
    f = Feed(store, {"crm": HOOK_EVENTS, "calls-only": ("call.missed",)}, clock)
    f.scan()                          # the first scan only sets the cursors: the past is not sent
    yield f


def types(endpoint="crm"):
    return sorted(d["type"] for d in sh.deliveries(endpoint, limit=1000))


def test_the_first_scan_sends_nothing_of_the_past(tmp_path):
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    with store.write():
        st.Call.create(call_id="old", pbx="asterisk", caller=PEER, caller_raw=PEER, called=LINE, line=LINE,
                       direction="inbound", missed=True, reason="busy", record="{}", created_at=100.0)
    assert Feed(store, {"crm": HOOK_EVENTS}, Clock()).scan() == 0
    assert sh.HookEvent.select().count() == 0
    store.close()


def test_calls_texts_consent_conversations_and_callbacks_become_events_once(feed):
    s, now = feed.store, feed.clock.t
    with s.write():
        call = st.Call.create(call_id="c1", pbx="asterisk", caller=PEER, caller_raw=PEER, called=LINE, line=LINE,
                              direction="inbound", missed=True, reason="no-answer", created_at=now,
                              started_at=now - 25, ended_at=now, record=json.dumps({"ring_seconds": 25}))
        out = s.add_message(direction="out", kind="missed-call", line=LINE, peer=PEER, body="Hi",
                            state="delivered", due_at=now, call=call.id)
        s.add_message(direction="in", kind="reply", line=LINE, peer=PEER, body="call me", state="received",
                      due_at=now)
        s.add_consent(ConsentEvent("opt-out", PEER, now, source="STOP"))
    sw.set_owner(s, PEER, "maria", "maria", now)
    feed.clock.t += 1
    made = feed.scan()
    assert types() == ["call.missed", "contact.opted_out", "conversation.assigned", "message.delivered",
                       "message.received", "message.sent"]
    assert types("calls-only") == ["call.missed"] and made == 7
    # the next scans overlap these rows: nothing new, and no write either
    for _ in range(3):
        feed.clock.t += 0.5
        assert feed.scan() == 0
    assert sh.HookDelivery.select().count() == 7
    body = json.loads(sh.HookEvent.get(sh.HookEvent.event_id == f"msg_{out}_delivered").body)
    assert body["type"] == "message.delivered" and body["data"]["number"] == PEER
    assert body["data"]["owner"] == "maria" and body["data"]["call"] == f"call_{call.id}"
    missed = json.loads(sh.HookEvent.get(sh.HookEvent.type == "call.missed").body)["data"]
    assert missed["duration_s"] == 25.0 and missed["ring_s"] == 25 and missed["reason"] == "no-answer"
    # later: the conversation closed, a call back completed, reassigned
    sw.set_state(s, PEER, "done", "maria", feed.clock.t)
    with s.write():
        row = cb.Callback.create(call=call, peer=PEER, endpoint="PJSIP/101", state="originating",
                                 created_at=feed.clock.t, updated_at=feed.clock.t)
    feed.clock.t += 1
    feed.scan()
    assert "conversation.closed" in types() and "callback.completed" not in types()   # not finished yet
    cb.finish_callback(s, row.id, "connected", now=feed.clock.t)
    sw.set_owner(s, PEER, "joe", "maria", feed.clock.t)
    feed.clock.t += 1
    feed.scan()
    assert types().count("conversation.assigned") == 2 and types().count("conversation.closed") == 1
    assert "callback.completed" in types()


def test_a_text_failing_after_a_restart_of_the_feed_is_one_event(feed, tmp_path):
    s, now = feed.store, feed.clock.t
    with s.write():
        mid = s.add_message(direction="out", kind="agent", line=LINE, peer=PEER, body="x", state="failed",
                            due_at=now, note="by maria")
    feed.clock.t += 1
    feed.scan()
    again = Feed(s, feed.endpoints, feed.clock)      # a new process: cursors come from the store
    feed.clock.t += 1
    assert again.scan() == 0
    e = sh.HookEvent.get(sh.HookEvent.event_id == f"msg_{mid}_failed")
    assert json.loads(e.body)["data"]["agent"] == "maria"


def test_schedule_is_the_spec_and_ends():
    assert ev.SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert ev.next_due(1, 100.0) == 105.0 and ev.next_due(2, 100.0) == 400.0
    assert ev.next_due(len(ev.SCHEDULE), 100.0) is None


@given(hs.integers(1, 10 ** 9), hs.sampled_from(["sent", "delivered", "failed", "no-receipt", "pending"]),
       hs.text(max_size=200), hs.floats(0, 4e9))
def test_message_events_have_derived_ids_and_valid_json(mid, state, body, at):
    m = {"id": mid, "direction": "out", "kind": "agent", "line": LINE, "peer": PEER, "body": body,
         "state": state, "error": "", "note": "by x", "call": None, "created_at": at, "updated_at": at,
         "written_at": None}
    a, b = ev.message_events(m), ev.message_events(dict(m))
    assert a == b                                           # the same row: the same events
    for e in a:
        assert e["event_id"].startswith(f"msg_{mid}_") and json.loads(e["body"])["data"]["body"] == body
    assert {e["type"] for e in a} <= set(HOOK_EVENTS)


def test_rotation_two_secrets_sign_and_either_verifies():
    from standardwebhooks.webhooks import Webhook
    import time
    old, new = new_secret(), new_secret()
    hdr = headers(f"{new}\n{old}", "msg_1_sent", int(time.time()), '{"a":1}')
    assert len(hdr["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify('{"a":1}', hdr) == {"a": 1}
    with pytest.raises(Exception):
        Webhook(new_secret()).verify('{"a":1}', hdr)


def test_config_refuses_bad_endpoints_with_the_key_and_line(tmp_path):
    (tmp_path / "sec").write_text("not-a-secret\n")
    with pytest.raises(ConfigError) as e:
        loads(f"""
[[hooks.endpoint]]
name = "crm"
url = "ftp://x"
secret_file = "{tmp_path / 'sec'}"
events = ["call.missed", "call.dropped"]
colour = "red"
""")
    text = str(e.value)
    assert "unknown key 'hooks.endpoint[0].colour'" in text
    with pytest.raises(ConfigError) as e:
        loads(f"""
[[hooks.endpoint]]
name = "crm"
url = "ftp://x"
secret_file = "{tmp_path / 'sec'}"
events = ["call.missed", "call.dropped"]
""")
    text = str(e.value)
    assert "'hooks.endpoint[0].url' (line 4): 'ftp://x' is not an http(s) URL" in text
    assert "'call.dropped' is not one of" in text and "not a whsec_ secret" in text
    (tmp_path / "sec").write_text(new_secret() + "\n" + new_secret() + "\n")
    cfg = loads(f'[[hooks.endpoint]]\nname = "crm"\nurl = "https://relay.example/h"\nsecret_file = "{tmp_path / "sec"}"\n')
    assert len(cfg.hooks.endpoint[0].secret.split()) == 2 and cfg.hooks.endpoint[0].events == HOOK_EVENTS


def test_claim_record_and_recover_keep_one_delivery_per_event_and_endpoint(feed):
    s, now = feed.store, feed.clock.t
    from pbx_textback.hooks.events import event
    evs = [event(f"call_{i}_missed", "call.missed", now, {"i": i}) for i in range(3)]
    assert sh.enqueue(s, evs, {"a": ("call.missed",), "b": ("call.missed",)}, now) == 6
    assert sh.enqueue(s, evs, {"a": ("call.missed",), "b": ("call.missed",)}, now) == 0
    got = sh.claim_due(s, now, ["a"], 10)
    assert len(got) == 3 and sh.claim_due(s, now, ["a"], 10) == []        # claimed: not twice
    sh.record_attempt(s, got[0][0].id, now=now, status=500, error="HTTP 500", ms=3, state=sh.PENDING,
                      due_at=now + 5)
    assert sh.recover_interrupted(s, now) == 2          # the two still `sending`: back, due now
    sh.disable_endpoint(s, "b", "410", now)
    assert sh.claim_due(s, now, ["a", "b"], 10) and all(
        d.endpoint == "a" for d, _ in sh.claim_due(s, now + 10, ["a", "b"], 10))
    d = sh.deliveries("a", state="sending")[0]
    assert d["event_id"].startswith("call_")


def test_prune_removes_only_old_finished_events(feed):
    s, now = feed.store, feed.clock.t
    from pbx_textback.hooks.events import event
    sh.enqueue(s, [event(f"e{i}", "call.missed", now - 40 * 86400, {}) for i in range(3)],
               {"a": ("call.missed",)}, now - 40 * 86400)
    sh.enqueue(s, [event("fresh", "call.missed", now, {})], {"a": ("call.missed",)}, now)
    ds = {d["event_id"]: d["id"] for d in sh.deliveries("a")}
    sh.record_attempt(s, ds["e0"], now=now, status=200, error="", ms=1, state=sh.DELIVERED)
    sh.record_attempt(s, ds["e1"], now=now, status=500, error="x", ms=1, state=sh.FAILED)
    sh.record_attempt(s, ds["fresh"], now=now, status=200, error="", ms=1, state=sh.DELIVERED)
    assert sh.prune(s, now - 30 * 86400) == 2
    assert sorted(d["event_id"] for d in sh.deliveries("a")) == ["e2", "fresh"]    # e2 still waits
    assert sh.HookAttempt.select().count() == 1


def test_after_a_long_pause_the_feed_catches_up_three_days_not_months(feed):
    from pbx_textback.hooks.feed import CATCH_UP_S
    s = feed.store
    t0 = feed.clock.t
    feed.clock.t = t0 + 90 * 86400              # the feed was off for three months
    with s.write():
        for n, at in (("old", t0 + 10 * 86400), ("recent", feed.clock.t - 86400)):
            st.Call.create(call_id=n, pbx="asterisk", caller=PEER, caller_raw=PEER, called=LINE, line=LINE,
                           direction="inbound", missed=True, reason="busy", record="{}", created_at=at)
    feed.scan()
    got = [json.loads(e.body)["data"]["call_id"] for e in sh.HookEvent.select()]
    assert got == ["recent"] and CATCH_UP_S == 3 * 86400
