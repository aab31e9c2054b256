"""Reply intents: the corpus (CTIA handbook + FCC 24-18, see reply_corpus.toml) and properties."""
import pathlib
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.policy.replies import INTENTS, KEYWORDS, TAKES_OBJECT, ReplyIntent, classify_reply

CORPUS = tomllib.loads((pathlib.Path(__file__).parent / "reply_corpus.toml").read_text("utf-8"))["reply"]


def test_corpus_is_big_and_bilingual():
    assert len(CORPUS) >= 80
    assert sum("(es)" in e["note"] or "Spanish" in e["note"] for e in CORPUS) >= 15
    assert {e["intent"] for e in CORPUS} == set(INTENTS)


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: e["text"][:40] or "<empty>")
def test_corpus(entry):
    got = classify_reply(entry["text"])
    assert got.intent == entry["intent"], (entry["note"], got)
    if "matched" in entry:
        assert got.matched == entry["matched"]
    if got.intent == "message":
        assert got.matched is None
    else:
        assert got.matched


def test_to_dict_is_the_cli_shape():
    assert classify_reply("Stop").to_dict() == {"intent": "stop", "matched": "STOP"}
    assert classify_reply("hello").to_dict() == {"intent": "message", "matched": None}


def test_language_of_the_keyword():
    assert classify_reply("ALTO").lang == "es"
    assert classify_reply("STOP").lang == "en"
    assert classify_reply("dejen de escribirme").lang == "es"


def test_extra_keywords_add_languages_and_yes():
    fr = {"stop": ("ARRÊT", "ARRETER"), "help": ("AIDE",), "start": ("YES",)}
    assert classify_reply("arret", extra_keywords=fr).to_dict() == {"intent": "stop", "matched": "ARRÊT"}
    assert classify_reply("Aide!", extra_keywords=fr).intent == "help"
    assert classify_reply("yes", extra_keywords=fr).intent == "start"
    assert classify_reply("yes").intent == "message"
    assert classify_reply("arreter svp maintenant", extra_keywords=fr).intent == "review"
    # built-ins cannot be redefined by config: STOP stays stop
    assert classify_reply("stop", extra_keywords={"start": ("STOP",)}).intent == "stop"
    with pytest.raises(ValueError):
        classify_reply("x", extra_keywords={"maybe": ("X",)})


# --- properties ---------------------------------------------------------------------------------

ALL_KEYWORDS = [(kw, intent) for intent, rows in KEYWORDS.items() for kw, _, _ in rows]


def _recase(word: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c.lower() for c, f in zip(word, flips + [False] * len(word)))


SUFFIXES = st.sampled_from(["", ".", "!", "?", ",", "!!!", "?!", "...", "\u200b", "\u200d", "\ufeff",
                            " 🙏", "🛑", " 😡", "👍🏽", "\u2060", " \u200b!"])
SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", " \u00a0", "\u3000"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_KEYWORDS), st.lists(st.booleans(), max_size=12), SPACE, SPACE, SUFFIXES)
def test_keyword_variants_keep_their_intent(kw_intent, flips, lead, trail, suffix):
    kw, intent = kw_intent
    text = lead + _recase(kw, flips) + suffix + trail
    assert classify_reply(text).intent == intent, repr(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([k for k, i in ALL_KEYWORDS if " " in k]), st.sampled_from([" ", "  ", "-", " - ", "\t"]))
def test_multiword_keywords_any_spacing(kw, sep):
    assert classify_reply(kw.replace(" ", sep)).intent == "stop"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_on_any_text(text):
    r = classify_reply(text)
    assert isinstance(r, ReplyIntent) and r.intent in INTENTS
    assert set(r.to_dict()) == {"intent", "matched"}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_never_raises_with_keywords_inside(noise):
    for t in (f"stop {noise}", f"{noise} stop", f"{noise} no me escriban {noise}"):
        assert classify_reply(t).intent in INTENTS


def test_non_str_input_does_not_raise():
    assert classify_reply(None).intent == "message"     # type: ignore[arg-type]


# --- issue 12: the review flag stays rare, real opt-outs still opt out ----------------------------

STOP_WORDS = [kw for kw, intent in ALL_KEYWORDS if intent == "stop"]
THINGS = st.sampled_from(["The leak", "The water", "My AC", "The alarm", "The bleeding", "The noise",
                          "My toilet", "The dripping", "It", "The heater", "The pain"])
DESCRIBE = st.sampled_from(["{t} won't stop", "{t} wont stop", "{t} doesn't stop", "{t} stopped working",
                            "{t} stopped", "{t} keeps running and won't stop", "{t} never stops",
                            "{t} is not stopping"])
REQUESTS = st.sampled_from(["", ", please hurry", ". Can someone come today?", " - call me back",
                            "! help", " since this morning", ", what do I do"])


@settings(max_examples=300, deadline=None)
@given(DESCRIBE, THINGS, REQUESTS, st.lists(st.booleans(), max_size=40))
def test_stop_inside_a_request_is_an_ordinary_message(shape, thing, tail, flips):
    text = _recase(shape.format(t=thing) + tail, flips)
    assert classify_reply(text).intent == "message", repr(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STOP_WORDS), st.lists(st.booleans(), max_size=12),
       st.sampled_from(["", "please ", "pls ", "ok ", "just "]), st.sampled_from(["", " please", " now", " thanks", " it"]),
       SUFFIXES, SPACE)
def test_stop_keywords_with_filler_still_opt_out(kw, flips, before, after, suffix, space):
    text = space + before + _recase(kw, flips) + after + suffix
    if kw.lower() in TAKES_OBJECT and after == " it":
        assert classify_reply(text).intent == "review", repr(text)      # "cancel it": the booking?
    else:
        assert classify_reply(text).intent == "stop", repr(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(STOP_WORDS), st.sampled_from(["Hi. ", "ok, ", "Thanks for the text. ", "I said "]),
       st.sampled_from(["", ".", "!", "!!"]))
def test_a_stop_keyword_alone_in_a_clause_of_a_longer_text_still_opts_out(kw, lead, end):
    text = f"{lead}{kw}{end}" if lead != "I said " else f"{lead.strip()}. {kw}{end}"
    assert classify_reply(text).intent == "stop", repr(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["stop texting me", "please stop messaging me", "take me off your list",
                        "unsubscribe me", "no more texts", "dont text me again", "remove my number"]),
       st.sampled_from(["", "The leak won't stop. ", "My AC stopped working, ", "hi "]))
def test_opt_out_phrases_win_even_beside_a_describing_stop(phrase, lead):
    assert classify_reply(lead + phrase).intent == "stop"
