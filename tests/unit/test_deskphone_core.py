"""The pure parts of desk phones: the Originate as recorded, reading the PBX's answers, the
timeline's words, the text pushed to a phone and its once-a-minute limit."""
from pathlib import Path

from hypothesis import given, strategies as stt

from pbx_textback.core.pbx.amiframe import frames_from_bytes
from pbx_textback.core.pbx.originate import ami_originate, ami_result, fs_originate, fs_result, outcome_words
from pbx_textback.core.text.deskpush import MAX_CHARS, Throttle, push_text, to_ascii

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "originate"


def _action_txt(name):
    lines = (FIX / f"originate-{name}.action.txt").read_bytes().decode().split("\r\n")
    return dict(line.split(": ", 1) for line in lines if line)


def test_the_originate_is_the_recorded_one_field_for_field():
    for name, number, aid in (("answered", "+15125550188", "cb-1"), ("no-answer", "+15125550189", "cb-2"),
                              ("callee-busy", "+15125550190", "cb-3")):
        got = ami_originate("PJSIP/100", "from-internal", number, ring_seconds=20, action_id=aid)
        assert got == _action_txt(name)
        assert list(got) == list(_action_txt(name))           # and in the recorded order


def _answer(name):
    """What AmiSource.send_action returns: the queued response and the OriginateResponse."""
    frames = [dict(f) for f in frames_from_bytes((FIX / f"originate-{name}.ami").read_bytes())]
    queued = next(f for f in frames if f.get("Message") == "Originate successfully queued")
    final = next(f for f in frames if f.get("Event") == "OriginateResponse")
    return [queued, final]


def test_the_recorded_answers_read_right():
    assert ami_result(_answer("answered")) == (True, "the desk phone answered", "1795971950.2")
    assert ami_result(_answer("callee-busy")) == (True, "the desk phone answered", "1795971994.5")
    # Failure, Reason 3, Uniqueid <unknown>: no id to keep
    assert ami_result(_answer("no-answer")) == (False, "the desk phone did not answer", "")
    assert ami_result({"Response": "Error", "Message": "Permission denied"}) == (
        False, "the PBX refused: Permission denied", "")


def test_freeswitch_originate_and_its_answers():
    cmd = fs_originate("user/100", "default", "+15125550188", ring_seconds=20)
    assert cmd == ("originate {origination_caller_id_name='Callback +15125550188',"
                   "origination_caller_id_number=+15125550188,originate_timeout=20}"
                   "user/100 +15125550188 XML default")
    assert fs_result("+OK 4f1c-77\n") == (True, "the desk phone answered", "4f1c-77")
    assert fs_result("-ERR NO_ANSWER\n") == (False, "the desk phone did not answer", "")
    assert fs_result("-ERR USER_NOT_REGISTERED")[1] == "the desk phone is not registered"


def test_result_words():
    assert outcome_words("originating", "", None) == "ringing the desk phone"
    assert outcome_words("failed", "the desk phone did not answer", None) == "the desk phone did not answer"
    assert outcome_words("connected", "", None) == "desk phone answered: calling the caller"
    assert outcome_words("connected", "", {"answered": True}) == "connected"
    assert outcome_words("connected", "", {"answered": False, "hangup_cause": "17"}) == "caller busy"
    assert outcome_words("connected", "", {"answered": False, "hangup_cause": "19"}) == "caller did not answer"


def test_push_text():
    assert push_text("+15125550188", "can you call me back?") == "Reply +15125550188: can you call me back?"
    long = push_text("+15125550188", "word " * 100)
    assert len(long) == MAX_CHARS and long.endswith("...")
    assert push_text("+15125550188", "Caf\u00e9 \u202e<b>\U0001f600\n ok", more=2) == \
        "Reply +15125550188 (+2 more): Cafe <b> ok"


@given(stt.text(max_size=2000), stt.integers(0, 99))
def test_a_pushed_text_is_always_short_printable_ascii(body, more):
    t = push_text("+15125550188", body, more)
    assert len(t) <= MAX_CHARS and t.isascii() and t.isprintable()
    assert t.startswith("Reply +15125550188")
    assert to_ascii(body) == to_ascii(to_ascii(body))


def test_one_push_per_conversation_per_minute_and_the_held_ones_go_after():
    th = Throttle(60)
    assert th.offer("+1a", "one", 0) == [("+1a", "one", 0)]
    assert th.offer("+1b", "other caller", 1) == [("+1b", "other caller", 0)]
    assert th.offer("+1a", "two", 10) == [] and th.offer("+1a", "three", 20) == []
    assert th.due(59) == []
    assert th.due(60) == [("+1a", "three", 1)]            # the newest, and how many more
    assert th.offer("+1a", "four", 70) == []               # the minute restarted at the held push
    assert th.due(120) == [("+1a", "four", 0)]


@given(stt.lists(stt.tuples(stt.sampled_from(["+1a", "+1b"]), stt.floats(0, 5)), max_size=60))
def test_never_two_pushes_within_a_minute_for_one_caller(steps):
    th, now, pushed = Throttle(60), 0.0, []
    for peer, dt in steps:
        now += dt
        pushed += [(p, now) for p, _, _ in th.offer(peer, "x", now) + th.due(now)]
    for peer in ("+1a", "+1b"):
        times = [t for p, t in pushed if p == peer]
        assert all(b - a >= 60 for a, b in zip(times, times[1:]))


def test_deskphones_config_is_checked_with_the_key_and_line():
    import pytest
    from pbx_textback.config import ConfigError, loads
    assert loads("[deskphones]\nchannel = \"SIP/{ext}\"\n").deskphones.channel == "SIP/{ext}"
    for text, words in (("channel = \"PJSIP/100\"", "'deskphones.channel' (line 2): 'PJSIP/100' names no phone"),
                        ("ring_seconds = 0", "'deskphones.ring_seconds' (line 2): 0 is not within 5..120"),
                        ("message_to = \"pjsip:{ext}|x\"", "'deskphones.message_to' (line 2): no blanks"),
                        ("ringseconds = 20", "unknown key 'deskphones.ringseconds' (line 2); did you mean 'ring_seconds'?")):
        with pytest.raises(ConfigError) as e:
            loads("[deskphones]\n" + text + "\n")
        assert words in str(e.value)


def test_the_loopback_ami_server_replays_an_originate_byte_for_byte_and_maps_what_the_client_sent():
    from pbx_textback.ami.replay_server import originate_frames, replay_originate
    for name in ("answered", "no-answer", "callee-busy"):
        raw = (FIX / f"originate-{name}.ami").read_bytes()
        frames, recorded = originate_frames(raw)
        same = replay_originate(frames, recorded, _action_txt(name))
        queued = raw.index(b"Message: Originate successfully queued\r\n\r\n") + len(b"Message: Originate successfully queued\r\n\r\n")
        assert same == raw[queued:raw.index(b"Response: Goodbye")]        # the recording itself
        other = replay_originate(frames, recorded, {"ActionID": "textback-cb-7", "Exten": "+13105550123",
                                                    "Channel": "PJSIP/205"})
        final = next(dict(f) for f in frames_from_bytes(other) if dict(f).get("Event") == "OriginateResponse")
        assert final["ActionID"] == "textback-cb-7" and final["Exten"] == "+13105550123"
        assert final["Channel"].startswith("PJSIP/205")
        assert recorded[b"Exten"] not in other and b"PJSIP/100" not in other


def test_the_loopback_event_socket_background_job_parses_as_freeswitch_events_do():
    from pbx_textback.core.pbx.eslframe import parse_stream
    from pbx_textback.esl.replay_server import background_job
    cmd = "originate {origination_caller_id_name='Callback +15125550188'}user/100 +15125550188 XML default"
    for fmt in ("plain", "json"):
        [ev] = parse_stream(background_job(fmt, "job-1", cmd, "-ERR NO_ANSWER\n"))
        ev = dict(ev)
        assert (ev["Event-Name"], ev["Job-UUID"], ev["Job-Command"]) == ("BACKGROUND_JOB", "job-1", "originate")
        assert ev["Job-Command-Arg"] == cmd.split(" ", 1)[1]
        assert ev["_body"] == "-ERR NO_ANSWER\n"
        assert fs_result(ev["_body"]) == (False, "the desk phone did not answer", "")
