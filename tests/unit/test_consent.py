"""Consent state machine: one confirmation per opt-out, across duplicates and restarts."""
import pytest

from pbx_textback.core.policy.consent import (ConsentEvent as E, confirmation_text, consent_check, export_rows,
                                       is_opted_out, owed, replay, should_answer_help, standing, CSV_FIELDS)
from pbx_textback.core.policy.replies import classify_reply
from pbx_textback.core.text.sms import sms_info

N, M = "+15125550123", "+15125550199"
L1, L2 = "+15125550100", "+15125550101"
T = 1_800_000_000.0


def call(at, line=L1, n=N):
    return E("inbound-call", n, at, line=line, source="call-1")


def stop(at, line=L1, scope="business", n=N, text="STOP"):
    return E("opt-out", n, at, scope=scope, line=line, source=text)


def start(at, line=L1, scope="business", n=N):
    return E("opt-in", n, at, scope=scope, line=line, source="START")


def confirmed(at, kind="opt-out", scope="business", line="", n=N):
    return E("confirmation", n, at, scope=scope, line=line, confirms=kind)


class Service:
    """What the lead's loop does: store the event, ask what is owed, record + queue it.
    `restart()` keeps only the stored history (the durable part)."""

    def __init__(self):
        self.history, self.sent = [], []

    def receive(self, ev, now):
        self.history.append(ev)
        self.flush(now)

    def flush(self, now, crash_before_queue=False):
        for c in owed(self.history, now):
            if crash_before_queue:
                return
            self.history.append(confirmed(now, c.kind, c.scope, c.line, c.number))
            self.sent.append((c.kind, c.number))

    def restart(self, now):
        self.flush(now)


def test_conversational_consent_from_a_call():
    h = [call(T)]
    assert standing(h, N, L1).status == "conversational"
    assert consent_check(h, N, L1).ok
    assert consent_check([], N, L1).ok                         # the call that just came in


def test_duplicate_stops_one_confirmation():
    s = Service()
    s.receive(call(T), T)
    s.receive(stop(T + 10), T + 10)
    s.receive(stop(T + 11, text="stop"), T + 11)
    s.receive(stop(T + 12, text="STOP!!"), T + 12)
    assert s.sent == [("opt-out", N)]
    assert is_opted_out(s.history, N, L1) and is_opted_out(s.history, N, L2)   # business-wide


def test_stop_crash_restart_stop_still_one():
    s = Service()
    s.history.append(stop(T))                                  # stored, then the process dies
    s.flush(T, crash_before_queue=True)
    assert s.sent == []
    s.restart(T + 30)                                          # rebuild from history: still owed
    assert s.sent == [("opt-out", N)]
    s.receive(stop(T + 40), T + 40)                            # STOP again after the restart
    s.restart(T + 50)
    assert s.sent == [("opt-out", N)]


def test_stop_twice_across_a_crash_before_any_confirmation_owes_one():
    h = [stop(T), stop(T + 60)]                                 # two STOPs stored, nothing queued
    assert [c.kind for c in owed(h, T + 70)] == ["opt-out"]
    assert owed(h, T + 70)[0].requested_at == T + 60           # window restarts with the latest


def test_confirmation_never_sent_late():
    h = [stop(T)]
    assert owed(h, T + 299)
    assert owed(h, T + 301) == []                              # FCC: within five minutes
    assert replay(h)[(N, "*")].confirmation_status(T + 301) == "expired"


def test_stop_then_start_opt_in_confirmation():
    s = Service()
    s.receive(stop(T), T)
    s.receive(start(T + 100), T + 100)
    assert s.sent == [("opt-out", N), ("opt-in", N)]
    assert not is_opted_out(s.history, N, L1)
    assert consent_check(s.history, N, L1).ok
    s.receive(start(T + 110), T + 110)                         # duplicate START: nothing new
    assert len(s.sent) == 2
    s.receive(stop(T + 200), T + 200)                          # a new opt-out: a new confirmation
    assert s.sent[-1] == ("opt-out", N) and len(s.sent) == 3


def test_start_without_opt_out_owes_nothing():
    assert owed([call(T), start(T + 1)], T + 2) == []


def test_start_supersedes_an_unsent_opt_out_confirmation():
    h = [stop(T), start(T + 5)]
    assert [c.kind for c in owed(h, T + 6)] == ["opt-in"]


def test_a_new_call_does_not_undo_an_opt_out():
    h = [stop(T), confirmed(T + 1), call(T + 3600)]
    assert is_opted_out(h, N, L1)
    chk = consent_check(h, N, L1)
    assert not chk.ok and "STOP" in chk.detail


def test_line_scope():
    h = [stop(T, line=L1, scope="line")]
    assert is_opted_out(h, N, L1) and not is_opted_out(h, N, L2)
    assert owed(h, T + 1)[0].line == L1 and owed(h, T + 1)[0].scope == "line"
    h += [confirmed(T + 1, scope="line", line=L1), stop(T + 2, line=L1, scope="line")]
    assert owed(h, T + 3) == []                                # duplicate on the same line
    h.append(stop(T + 4, line=L2, scope="line"))               # another line: its own opt-out
    assert [c.line for c in owed(h, T + 5)] == [L2]


def test_which_request_a_confirmation_settles_does_not_depend_on_the_calls_read():
    # two line-scoped STOPs at one instant and a business-wide confirmation sent from L1: it
    # settles L1's, with or without an earlier call from L2 in the history (the standing's
    # rows leave calls out; the replay used to settle whichever scope it met first)
    h = [stop(T, line=L1, scope="line"), stop(T, line=L2, scope="line"), confirmed(T, line=L1)]
    assert [c.line for c in owed(h, T + 1)] == [L2]
    assert [c.line for c in owed([call(T, line=L2)] + h, T + 1)] == [L2]
    # sent from neither line: the oldest request, ties by line, whatever came first
    other = confirmed(T + 1, line="+15125550177")
    h2 = [stop(T, line=L2, scope="line"), stop(T, line=L1, scope="line"), other]
    assert [c.line for c in owed(h2, T + 2)] == [L2]
    assert [c.line for c in owed([call(T, line=L2)] + h2, T + 2)] == [L2]


def test_line_start_clears_a_business_wide_opt_out():
    h = [stop(T), confirmed(T + 1), start(T + 10, line=L2, scope="line")]
    assert not is_opted_out(h, N, L2)
    assert [c.kind for c in owed(h, T + 11)] == ["opt-in"]


def test_numbers_are_independent():
    h = [stop(T), stop(T + 1, n=M)]
    assert sorted(c.number for c in owed(h, T + 2)) == [N, M]


def test_help_is_answered_even_when_opted_out():
    # decision (CTIA): HELP gets an answer whether or not the number is subscribed; only a
    # loop guard limits it. The opt-out stands.
    h = [stop(T), confirmed(T + 1)]
    assert classify_reply("HELP").intent == "help"
    assert should_answer_help(None, T + 10)
    assert not should_answer_help(T + 10, T + 20)
    assert should_answer_help(T + 10, T + 100)
    assert is_opted_out(h, N, L1)


def test_confirmation_texts():
    out = confirmation_text("opt-out", "Acme Dental", "+15125550100")
    assert "Acme Dental" in out and "Reply START to resubscribe" in out
    h = confirmation_text("help", "Acme Dental", "+15125550100")
    assert "Acme Dental" in h and "+15125550100" in h and "Reply STOP to opt out" in h
    assert "STOP" in confirmation_text("help", "Acme Dental", "")
    assert "Acme Dental" in confirmation_text("opt-in", "Acme Dental", "")
    es = confirmation_text("opt-out", "Acme Dental", "+15125550100", lang="es")
    assert "START" in es and "baja" in es
    assert "AYUDA" not in confirmation_text("help", "Acme", "+1", lang="xx")  # falls back to English
    for lang in ("en",):
        for kind in ("opt-out", "opt-in", "help"):
            assert sms_info(confirmation_text(kind, "Acme Dental & Implants", "+15125550100", lang)).segments == 1
    with pytest.raises(ValueError):
        confirmation_text("promo", "Acme", "")


def test_export_rows_for_csv():
    h = [call(T), stop(T + 10), confirmed(T + 11), start(T + 20)]
    rows = export_rows(h, N)
    assert [r["event"] for r in rows] == ["inbound-call", "opt-out", "confirmation (opt-out)", "opt-in"]
    assert [r["status_after"] for r in rows] == ["conversational", "opted-out", "opted-out", "opted-in"]
    assert rows[1]["source"] == "STOP" and rows[0]["at"].endswith("Z")
    assert all(set(r) == set(CSV_FIELDS) for r in rows)
    assert export_rows(h, M) == []


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        replay([E("maybe", N, T)])


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["stop", "start", "crash", "restart"]),
                          st.integers(min_value=0, max_value=120)), max_size=25))
def test_property_confirmations_alternate_and_never_repeat(ops):
    s, now, crashed = Service(), T, False
    for op, gap in ops:
        now += gap
        if op == "stop":
            s.history.append(stop(now))
            s.flush(now, crash_before_queue=crashed)
        elif op == "start":
            s.history.append(start(now))
            s.flush(now, crash_before_queue=crashed)
        elif op == "crash":
            crashed = True
        else:
            crashed = False
            s.restart(now)
    # between two opt-out confirmations there is an opt-in (a new opt-out), and vice versa;
    # an opt-in confirmation only ever follows an opt-out
    last_confirmed, seen_since = None, set()
    for ev in s.history:
        if ev.kind == "confirmation":
            if ev.confirms == last_confirmed:
                other = "opt-in" if ev.confirms == "opt-out" else "opt-out"
                assert other in seen_since, s.history
            if ev.confirms == "opt-in":
                assert any(e.kind == "opt-out" for e in s.history[:s.history.index(ev)])
            last_confirmed, seen_since = ev.confirms, set()
        else:
            seen_since.add(ev.kind)
    assert len(s.sent) <= sum(1 for op, _ in ops if op in ("stop", "start"))


def test_two_requests_at_one_instant_are_owed_in_a_fixed_order():
    """A line's STOP and a business-wide STOP in the same second: the confirmations owed come in
    the same order whether or not an earlier inbound call on that line is in the history (the
    start-up's check reads the history without the calls: store/consent_owed.py; the property
    itself: tests/unit/test_owed_without_calls.py)."""
    n, line = "+15125550001", "+15125550100"
    h = [E("inbound-call", n, 0.0, line=line),
         E("opt-out", n, 1.0, scope="line", line=line),
         E("opt-out", n, 1.0),
         E("opt-in", n, 0.0)]
    got = owed(h, 2.0)
    assert got == owed([e for e in h if e.kind != "inbound-call"], 2.0)
    assert [(c.scope, c.line) for c in got] == [("business", ""), ("line", line)]
