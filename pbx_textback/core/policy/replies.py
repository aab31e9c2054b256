"""What an inbound reply means for consent: stop | start | help | review | message. Pure.

Sources:
- CTIA Messaging Principles and Best Practices (2023): opt-out keywords STOP, STOPALL (carrier
  practice), UNSUBSCRIBE, CANCEL, END, QUIT; opt-in START/UNSTOP; HELP/INFO must be answered.
- FCC 24-18 (47 CFR 64.1200(a)(10)-(12)): "stop", "quit", "end", "revoke", "opt out", "cancel"
  and "unsubscribe" in a reply text revoke consent per se; other wording revokes consent where
  a reasonable person would read it so ("any reasonable means"); one confirmation text only.

How a message is read (first rule that applies wins):
1. The whole message, normalized, is a keyword -> stop / start / help; matched = the keyword.
   Normalized: NFKC (full-width letters), case-folded, accents, emoji, zero-width characters,
   punctuation and extra spaces dropped ("  Stop!!! 🙏" and "ＳＴＯＰ" are "stop").
2. A clause of the message (split at . , ! ? ; : newlines and dashes) is an opt-out keyword
   with only filler around it ("Stop please", "STOP STOP", "stop it", "ok. stop.") -> stop;
   matched = that clause.
3. An opt-out phrase anywhere ("please stop texting me", "take me off your list") -> stop,
   matched = the phrase; unless negated just before ("don't unsubscribe me") -> review.
4. A STOP-family keyword said TO us inside a longer message -> review: a person confirms with
   one action; matched = the keyword. Only where it reads as an order: opening a clause
   ("Stop with the reminders", "cancel it") or closing one after a person ("I want you to
   stop"). The same word describing the world is an ordinary message and no flag: "The leak
   won't stop, please hurry", "My AC stopped working", "can you stop by tomorrow", "I want to
   cancel my appointment", "El precio es muy alto". A flag on every "stop" taught the desk to
   click it away; kept rare, it is read.
5. Everything else -> message. START and HELP count only as the whole message (rule 1): an
   opt-in must be unambiguous, and "I need help with my order" is for a person to answer.
YES is not an opt-in keyword by default (it answers too many other questions); add it per
deployment with extra_keywords={"start": ("YES",)}.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INTENTS = ("stop", "start", "help", "review", "message")

# --- whole-message keywords: (keyword, language, source) ---------------------------------------
# Matched against the normalized message (see _norm); spaces/hyphens inside are equivalent.
KEYWORDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "stop": (
        ("STOP", "en", "CTIA universal opt-out; FCC 24-18 per se"),
        ("STOPALL", "en", "carrier universal opt-out (all programs on the number)"),
        ("STOP ALL", "en", "spelled-out STOPALL"),
        ("UNSUBSCRIBE", "en", "CTIA; FCC 24-18"),
        ("CANCEL", "en", "CTIA; FCC 24-18"),
        ("END", "en", "CTIA; FCC 24-18"),
        ("QUIT", "en", "CTIA; FCC 24-18"),
        ("REVOKE", "en", "FCC 24-18"),
        ("OPTOUT", "en", "FCC 24-18 'opt out' written as one word"),
        ("OPT OUT", "en", "FCC 24-18 (also OPT-OUT)"),
        ("REMOVE", "en", "common carrier/aggregator opt-out keyword"),
        ("UNSUB", "en", "common abbreviation of UNSUBSCRIBE"),
        ("ALTO", "es", "Spanish STOP (common aggregator default)"),
        ("PARAR", "es", "Spanish 'to stop'"),
        ("PARE", "es", "Spanish 'stop' (imperative)"),
        ("DETENER", "es", "Spanish 'to stop'"),
        ("CANCELAR", "es", "Spanish CANCEL"),
        ("BAJA", "es", "Spanish 'unsubscribe' (dar de baja)"),
        ("NO MAS", "es", "'no más': reasonable-person revocation in Spanish (FCC 24-18)"),
        ("BASTA", "es", "Spanish 'enough'"),
    ),
    "start": (
        ("START", "en", "CTIA opt-in keyword"),
        ("UNSTOP", "en", "carrier opt-in keyword"),
        ("COMENZAR", "es", "Spanish START used by aggregators"),
    ),
    "help": (
        ("HELP", "en", "CTIA: HELP must be answered"),
        ("INFO", "en", "CTIA: HELP synonym"),
        ("AYUDA", "es", "Spanish HELP"),
    ),
}

# Words a person puts around a keyword without changing it ("Stop please", "stop it now").
FILLER = frozenset(
    "please pls plz plse now thanks thank you thx ty ok okay k just already immediately asap "
    "it this that these them sir maam right away again all "
    "por favor gracias ya ahora mismo".split())

# --- opt-out phrases anywhere in the message (regex over the normalized text) -------------------
# Each: (pattern, language, note). Normalized text: lowercase ascii-ish words separated by one space,
# apostrophes removed ("don't" -> "dont"), accents removed ("más" -> "mas").
_ME = r"(?:me|us|this number|my number|my phone|this phone)"
STOP_PHRASES: tuple[tuple[str, str, str], ...] = (
    (r"stop (?:texting|txting|messaging|msging|sending|contacting|calling|spamming|bothering|"
     r"harassing|emailing)(?: (?:me|us|messages|texts|these|this|that))?",
     "en", "FCC 24-18 reasonable means: 'stop texting me'"),
    (r"stop (?:the |these |your |all )?(?:texts|txts|messages|msgs|sms|notifications|spam)",
     "en", "'stop the texts'"),
    (r"(?:dont|do not|never|pls dont|please dont|please do not) (?:ever )?"
     r"(?:text|txt|message|msg|contact|call|sms|email|bother|write) " + _ME + r"?",
     "en", "'don't text me (again)'"),
    (r"(?:take|remove|delete|drop|get|cross|scratch) (?:me|my number|this number|my phone)"
     r"(?: number)? (?:off|from)", "en", "'take me off your list'"),
    (r"remove (?:me|my number|this number|my phone number)", "en", "'remove me'"),
    (r"delete (?:me|my number|this number|my phone number|my contact|my info)", "en", "'delete my number'"),
    (r"lose (?:my|this) number", "en", "'lose my number'"),
    (r"(?:unsubscribe|unsub|optout|opt out|opt me out|stopall|stop all)(?: me| us| this number| my number)?", "en", "opt-out keyword inside a sentence"),
    (r"revoke (?:my |all )?(?:consent|permission|authorization)", "en", "FCC 24-18 'revoke consent'"),
    (r"leave me alone|go away|(?:fuck|f|piss|back|buzz|bugger) off|get lost", "en", "'leave me alone'"),
    (r"no more (?:texts|text|txts|messages|message|msgs|sms|texting|messaging|spam|contact)",
     "en", "'no more texts'"),
    (r"(?:i )?(?:dont|do not|no longer) (?:want|wish) (?:to (?:receive|get) )?(?:any )?(?:more )?"
     r"(?:of )?(?:your |these |this |any )?(?:texts|text|messages|msgs|sms|texting|messaging|contact)",
     "en", "'I don't want your texts'"),
    (r"wrong (?:number|person|#)", "en", "wrong number: the recipient never consented"),
    (r"(?:this is|thats|its|this) spam|(?:i will|ill|im going to|gonna) (?:block|report) (?:you|this|your)",
     "en", "'this is spam' / 'I'll block you'"),
    (r"(?:blocking|reporting) (?:you|this number|your number)", "en", "'blocking you'"),
    # Spanish
    (r"(?:no|nunca) (?:me )?(?:escriba|escribas|escriban|envie|envies|envien|mande|mandes|manden|"
     r"contacte|contactes|contacten|llame|llames|llamen)(?: mas)?", "es", "'no me escriba (más)'"),
    (r"(?:deja|dejen|deje|dejar) de (?:escribirme|enviarme|mandarme|contactarme|llamarme|molestarme|"
     r"escribir|enviar|mandar)", "es", "'dejen de escribirme'"),
    (r"no (?:quiero|deseo) (?:recibir )?(?:mas )?(?:sus |tus |estos |los )?(?:mensajes|textos|sms)",
     "es", "'no quiero mensajes'"),
    (r"no mas (?:mensajes|textos|sms)", "es", "'no más mensajes'"),
    (r"(?:dar|darme|dame|denme|deme|de) de baja", "es", "'darme de baja'"),
    (r"(?:borra|borren|borre|borrar|elimina|eliminen|elimine|quita|quiten|quite|saca|saquen|"
     r"saque)(?:me)? (?:mi numero|de (?:su|tu|la) lista)", "es", "'bórrenme de su lista'"),
    (r"numero equivocado|se equivoco de numero|dejame en paz|dejenme en paz", "es", "'número equivocado'"),
)

# Clause-level opt-outs: the clause, fillers removed, is exactly one of these (rule 2).
STOP_CLAUSES: dict[str, tuple[str, str]] = {
    "not interested": ("en", "a reasonable person reads a bare 'not interested' as stop"),
    "im not interested": ("en", "as above"),
    "i am not interested": ("en", "as above"),
    "no thanks not interested": ("en", "as above"),
    "enough": ("en", "bare 'enough'"),
    "no me interesa": ("es", "Spanish 'not interested'"),
    "ya no": ("es", "Spanish 'no more'"),
}

# A negation right before an opt-out phrase makes it a request NOT to opt out -> review
# ("please don't unsubscribe me", "I do not want to opt out"). "no" is not one: "No, stop texting me".
NEGATED_BEFORE = re.compile(r"\b(?:dont|do not|not|never|nunca)(?: (?:want|wish|need|wanna)(?: to)?)?$")

# Keywords that, with an object ("cancel it", "end this"), more likely mean a booking -> review.
TAKES_OBJECT = frozenset("cancel cancelar end remove revoke baja".split())
PRONOUNS = frozenset("it this that these them".split())

# STOP-family keywords that may be an order inside a sentence -> review (rule 4), in their
# base form only: "stopped", "cancelled" describe what happened, never an order to us.
# (Spanish: 'alto' also means tall/high, 'baja' low, 'parar' to stop by, 'cancelar' a booking.)
REVIEW_WORDS = frozenset("stop cancel end quit revoke remove "
                         "alto parar pare detener cancelar baja basta".split())
# The word after a clause-opening keyword that gives it another meaning: visiting ("stop by"),
# a booking or a bill ("cancel my appointment", "remove the charge").
OTHER_SENSE_NEXT = frozenset("by in over at for".split())
OTHER_SENSE_OBJECTS = frozenset("appointment appt appointments booking reservation order visit cleaning "
                                "checkup surgery charge charges payment fee cita reserva pedido".split())
# A negation right before a clause-closing keyword makes it a description: "won't stop".
DESCRIBING_BEFORE = frozenset("wont doesnt didnt cant cannot couldnt wouldnt isnt not never no".split())

# --- normalization ----------------------------------------------------------------------------
_APOSTROPHES = dict.fromkeys(map(ord, "'’‘ʼ`´"), None)
_CLAUSE_SPLIT = re.compile(r"[.,!?;:\n\r\t…¡¿]+|\s[-–—]+\s|[–—]+")


def _fold(text: str) -> str:
    """NFKC, casefold, strip accents/emoji/zero-width; keep letters, digits, '#', spaces."""
    s = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    s = unicodedata.normalize("NFKD", s)
    out = []
    for ch in s:
        cat = unicodedata.category(ch)
        if cat[0] in "LN" or ch == "#":
            out.append(ch)
        elif cat in ("Mn", "Me", "Cf"):        # accents, variation selectors, zero-width, BOM
            continue
        else:                                  # spaces, punctuation, symbols, emoji
            out.append(" ")
    return " ".join(unicodedata.normalize("NFKC", "".join(out)).split())


def _key(keyword: str) -> str:
    return " ".join(_fold(keyword.replace("-", " ")).split())


@dataclass(frozen=True)
class ReplyIntent:
    intent: str                     # stop | start | help | review | message
    matched: str | None = None      # the keyword (upper case) or the phrase as found
    lang: str | None = None         # language of the keyword/phrase (en, es, or from config)
    rule: str = ""                  # which rule/note decided, for explain (not in to_dict)

    def to_dict(self) -> dict:
        return {"intent": self.intent, "matched": self.matched}


def _table(extra: dict[str, tuple[str, ...]] | None):
    words: dict[str, tuple[str, str, str, str]] = {}   # key -> (intent, KEYWORD, lang, note)
    for intent in ("stop", "start", "help"):           # precedence on clashes: stop first
        for kw, lang, note in KEYWORDS[intent]:
            words.setdefault(_key(kw), (intent, kw, lang, note))
    for intent, kws in (extra or {}).items():
        if intent not in ("stop", "start", "help"):
            raise ValueError(f"extra_keywords: intent must be stop, start or help, not {intent!r}")
        for kw in kws:
            k = _key(str(kw))
            if k and k not in words:
                words[k] = (intent, str(kw).strip().upper(), "config", "configured keyword")
    return words


_BUILTIN = _table(None)
_PHRASES = [(re.compile(r"\b(?:" + p + r")\b"), lang, note) for p, lang, note in STOP_PHRASES]


def _strip_filler(tokens: list[str]) -> list[str]:
    i, j = 0, len(tokens)
    while i < j and tokens[i] in FILLER:
        i += 1
    while j > i and tokens[j - 1] in FILLER:
        j -= 1
    return tokens[i:j]


def classify_reply(text: str, *, extra_keywords: dict[str, tuple[str, ...]] | None = None) -> ReplyIntent:
    """Never raises on any text (a bad extra_keywords config raises ValueError)."""
    words = _table(extra_keywords) if extra_keywords else _BUILTIN
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    norm = _fold(text.replace("-", " "))
    if not norm:
        return ReplyIntent("review", "🛑", None, "stop-sign emoji") if "🛑" in text \
            else ReplyIntent("message", None, None, "empty")

    # 1. the whole message is a keyword
    hit = words.get(norm)
    if hit:
        return ReplyIntent(hit[0], hit[1], hit[2], hit[3])

    # 2. a clause is a STOP keyword (or a stop clause) with only filler around it
    for clause in _CLAUSE_SPLIT.split(text.replace("-", " - ")):
        raw = _fold(clause.replace("-", " "))
        toks = raw.split()
        core = _strip_filler(toks)
        if not core:
            continue
        joined = " ".join(core)
        hit = words.get(joined)
        if hit and hit[0] == "stop":
            if joined in TAKES_OBJECT and PRONOUNS & set(toks):
                continue                                    # "cancel it": rule 4 (review)
            return ReplyIntent("stop", raw, hit[2], "keyword with filler: " + hit[3])
        if len(set(core)) == 1 and words.get(core[0], ("",))[0] == "stop":
            return ReplyIntent("stop", raw, words[core[0]][2], "repeated keyword")
        if joined in STOP_CLAUSES:
            lang, note = STOP_CLAUSES[joined]
            return ReplyIntent("stop", raw, lang, note)

    # 3. an opt-out phrase anywhere, unless negated right before it
    negated: ReplyIntent | None = None
    for rx, lang, note in _PHRASES:
        for m in rx.finditer(norm):
            phrase = m.group(0).strip()
            if NEGATED_BEFORE.search(norm[:m.start()].rstrip()):
                negated = negated or ReplyIntent("review", phrase, lang, "negated opt-out phrase: " + note)
                continue
            return ReplyIntent("stop", phrase, lang, note)
    if negated:
        return negated

    # 4. a STOP-family keyword that may be an order to us
    stop_words = {k for k, v in words.items() if v[0] == "stop" and " " not in k}
    for clause in _CLAUSE_SPLIT.split(text.replace("-", " - ")):
        tok = _order_word(_strip_filler(_fold(clause.replace("-", " ")).split()), stop_words)
        if tok:
            hit = words.get(tok)
            kw = hit[1] if hit else tok.upper()
            return ReplyIntent("review", kw, hit[2] if hit else None,
                               "opt-out keyword said as an order inside a longer message: a person confirms")
    if "🛑" in text:
        return ReplyIntent("review", "🛑", None, "stop-sign emoji")
    return ReplyIntent("message", None, None, "no keyword or opt-out phrase")


def _order_word(core: list[str], stop_words: set[str]) -> str:
    """The STOP-family word of a clause (filler stripped) when it reads as an order to us:
    first ("stop with the reminders") unless the next word gives it another sense ("stop by",
    "cancel my appointment"), or last after a person ("I want you to stop") unless a negation
    or a thing makes it a description ("the leak won't stop"). '' when neither."""
    if not core:
        return ""
    family = REVIEW_WORDS | stop_words
    first, rest = core[0], core[1:]
    if first in family:
        other_sense = rest and (rest[0] in OTHER_SENSE_NEXT or OTHER_SENSE_OBJECTS & set(rest[:3]))
        if not other_sense:
            return first
    last = core[-1]
    if len(core) > 1 and last in family and core[-2] not in DESCRIBING_BEFORE:
        # said to someone ("I want you to stop", "can you stop?"), not asked about ("when do
        # you end") nor said of a thing ("the leak won't stop")
        if {"you", "u", "ya", "yall"} & set(core[-4:-1]) and core[0] not in QUESTION_WORDS:
            return last
    return ""


QUESTION_WORDS = frozenset("what when where why how which who que cuando donde".split())
