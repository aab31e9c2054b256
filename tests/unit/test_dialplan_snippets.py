"""The dialplan snippets, checked without a PBX: Asterisk/FreePBX files through a parser of
Asterisk's config syntax (tests/asterisk_conf.py), the FreeSWITCH file through xml.etree; every
shared name against core.pbx.dialplan_vars; the UserEvent they emit through the real tracker."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pbx_textback.core.pbx import dialplan_vars as dv
from pbx_textback.core.pbx.asterisk import DEFAULT_MARKERS, AsteriskTracker
from tests import asterisk_conf as ac
from tests.amisim import Sim

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "dialplan_snippets"
PLAIN = SNIPPETS / "asterisk" / "extensions_textback.conf"
FREEPBX = SNIPPETS / "freepbx" / "extensions_custom.conf"
FS_XML = SNIPPETS / "freeswitch" / "textback.xml"
RECORDED = ROOT / "tests" / "fixtures" / "asterisk" / "pbx-config" / "extensions.conf"

# Contexts FreePBX generates (core, framework, announcement, ...) that a FreePBX snippet may
# jump to; read from FreePBX's own modules.
FREEPBX_CONTEXTS = {"from-pstn", "from-trunk", "from-internal", "from-internal-xfer",
                    "from-internal-custom", "ext-did", "ext-did-catchall", "from-did-direct",
                    "ext-local", "timeconditions", "app-blackhole", "from-pstn-custom"}
FREEPBX_PATTERNS = (r"app-announcement-\d+", r"ivr-\d+", r"ext-did-\d{4}")
APPS = {"noop", "set", "return", "gosub", "goto", "gotoif", "userevent", "answer", "agi",
        "playback", "hangup", "saydigits"}


def conf(path) -> ac.Conf:
    return ac.parse_file(path)


@pytest.fixture(params=[PLAIN, FREEPBX], ids=["asterisk", "freepbx"])
def snippet(request):
    return request.param, conf(request.param)


# ---- the parser itself ----------------------------------------------------------------------------
def test_parser_reads_the_recorded_pbx_dialplan():
    c = conf(RECORDED)
    assert "from-trunk" in c.contexts and "ext-local" in c.contexts
    ivr = c.contexts["ivr-support"].extens["s"]
    assert [s.prio for s in ivr] == list(range(1, len(ivr) + 1))
    assert any(s.label == "menu" for s in ivr)
    assert c.contexts["timeconditions"].extens["main"][5].label == "closed"


@pytest.mark.parametrize("text, error", [
    ("exten => s,1,NoOp()", "outside any"),
    ("[c]\nsame => n,NoOp()", "no exten"),
    ("[c]\nexten => s,2,NoOp()", "priority 1"),
    ("[c]\nexten => s,1,NoOp()\nexten => s,1,NoOp()", "twice"),
    ("[c]\nexten => s,1,NoOp()\n same => n(a),NoOp()\n same => n(a),NoOp()", "label a twice"),
    ("[c]\nexten => s,1,NoOp(\\\n)", "continuation"),
    ("[c]\nexten => s,1,Set(X=$[(1)", "unbalanced"),
    ("[c]\n;-- open\nexten => s,1,NoOp()", "block comment"),
])
def test_parser_rejects(text, error):
    with pytest.raises(ac.ConfError, match=error):
        ac.parse(text)


def test_parser_comments_and_escapes():
    c = ac.parse("[c](+) ; comment\n;-- block\n exten => x,1,Nope() --;\n"
                 "exten => s,1,NoOp(a\\;b) ; tail\n same => n(l),Goto(s,l)\n")
    assert list(c.contexts["c"].extens) == ["s"]
    assert c.contexts["c"].extens["s"][0].args == "a;b"
    assert ac.targets(c.contexts["c"].extens["s"][1]) == [("", "s", "l")]


# ---- both Asterisk snippets -------------------------------------------------------------------------
def _known_context(name: str, c: ac.Conf, freepbx: bool) -> bool:
    if name in c.contexts:
        return True
    return freepbx and (name in FREEPBX_CONTEXTS or any(re.fullmatch(p, name) for p in FREEPBX_PATTERNS))


def _check_targets(c: ac.Conf, *, freepbx: bool, ours_only: bool = False):
    for ctx, step in c.steps():
        assert step.app.lower() in APPS or not ours_only, f"{step.app} at line {step.line}"
        for tctx, texten, tprio in ac.targets(step):
            target_ctx = tctx or ctx.name
            target_ext = texten or step.exten
            assert _known_context(target_ctx, c, freepbx), f"line {step.line}: no context {target_ctx}"
            if target_ctx not in c.contexts or "$" in target_ext:
                continue          # FreePBX's own, or ${EXTEN}: resolved at run time
            steps = ac.find_exten(c.contexts[target_ctx], target_ext)
            assert steps, f"line {step.line}: no {target_ext}@{target_ctx}"
            assert (tprio.isdigit() and any(s.prio == int(tprio) for s in steps)) or any(
                s.label == tprio for s in steps), f"line {step.line}: no {tprio} in {target_ext}@{target_ctx}"
    for ctx in c.contexts.values():
        for inc in ctx.includes:
            assert _known_context(inc, c, freepbx), f"{ctx.name} includes unknown {inc}"


def test_every_jump_lands_somewhere(snippet):
    path, c = snippet
    _check_targets(c, freepbx=path == FREEPBX, ours_only=True)


def test_hangup_handlers_return_and_are_pushed(snippet):
    _, c = snippet
    pushed = [t for _, s in c.steps() for t in ac.targets(s)
              if s.app == "Set" and "hangup_handler_push" in s.args]
    assert pushed and all(t[0] == dv.CTX_HANGUP and t[1:] == ("s", "1") for t in pushed)
    handler = c.contexts[dv.CTX_HANGUP].extens["s"]
    assert handler[-1].app == "Return"                 # hangup handlers run like a Gosub
    for ctx_name in (dv.CTX_INBOUND, dv.CTX_MARK_CLOSED):
        if ctx_name in c.contexts:
            assert c.contexts[ctx_name].extens["s"][-1].app == "Return"


def _outcome_step(c: ac.Conf) -> ac.Step:
    [step] = [s for _, s in c.steps() if s.app == "UserEvent"]
    return step


def test_user_event_names_match_dialplan_vars_and_the_tracker(snippet):
    _, c = snippet
    name, headers = ac.user_event(_outcome_step(c))
    assert name == dv.OUTCOME_EVENT
    assert tuple(h for h, _ in headers) == dv.OUTCOME_HEADERS
    [marker] = [m for m in DEFAULT_MARKERS if m.kind == "userevent"]
    assert marker.key == dv.OUTCOME_EVENT
    assert marker.value == f"{dv.H_AFTER_HOURS}=1" and marker.closed


@pytest.mark.parametrize("variables, after_hours, vm_left", [
    ({"TEXTBACK_AFTERHOURS": "1", "VMSTATUS": "SUCCESS", "DIALSTATUS": ""}, True, True),
    ({"VMSTATUS": "FAILED", "DIALSTATUS": "NOANSWER"}, None, False),
    ({"DIALSTATUS": "CANCEL"}, None, False),
])
def test_the_tracker_reads_the_user_event_the_snippet_emits(snippet, variables, after_hours, vm_left):
    """The hangup handler's UserEvent, with the values Asterisk would substitute, on the AMI
    stream of a missed call (Sim shapes events like the recorded Asterisk 22): the tracker's
    CallRecord says what the dialplan knew."""
    _, c = snippet
    name, headers = ac.user_event(_outcome_step(c))
    body = {h: ac.evaluate(v, variables) for h, v in headers}
    assert body[dv.H_DIAL_STATUS] == variables.get("DIALSTATUS", "")
    s = Sim()
    ch = s.inbound("+13105550101", "+15125550100")
    leg = s.ring(ch, "100")
    s.dialend(ch, leg, "NOANSWER")
    s.hangup(leg, "19")
    s.emit("UserEvent", ch, UserEvent=name, **body)      # the hangup handler, before Hangup
    s.hangup(ch)
    t = AsteriskTracker()
    recs = [r for ev in s.events for r in t.feed(ev)]
    assert len(recs) == 1
    assert recs[0].pbx_after_hours is after_hours
    assert recs[0].voicemail_left is vm_left


def test_feature_codes_call_our_agi_with_arguments(snippet):
    _, c = snippet
    feats = c.contexts[dv.CTX_FEATURES].extens
    assert set(feats) == {dv.FEATURE_CALLBACK, dv.FEATURE_TEXTAGAIN}
    seen = {}
    for code, steps in feats.items():
        [agi] = [s for s in steps if s.app == "AGI"]
        url, *args = ac.split_args(agi.args)
        u = urlparse(url)
        assert u.scheme == "agi" and u.hostname == dv.AGI_HOST and u.port == dv.AGI_PORT
        assert not u.query and "?" not in url          # routes match agi_network_script exactly
        seen[code] = u.path.lstrip("/")
        assert args == ["PJSIP/${CHANNEL(endpoint)}"]  # -> agi_arg_1: PJSIP/100
        assert steps[0].prio == 1 and any(s.app == "Answer" and s.prio < agi.prio for s in steps)
        assert steps[-1].app == "Hangup"
    assert seen == {dv.FEATURE_CALLBACK: dv.AGI_CALLBACK, dv.FEATURE_TEXTAGAIN: dv.AGI_TEXTAGAIN}


def test_result_values_the_dialplan_tests_are_ones_the_service_sets(snippet):
    _, c = snippet
    for _, s in c.steps():
        for m in re.finditer(r'"\$\{TEXTBACK_RESULT\}" = "([^"]*)"', s.args):
            assert m.group(1) in dv.RESULTS


def test_plain_snippet_applied_to_the_recorded_pbx_dialplan():
    """The README's edits on the dialplan that recorded our traces: still one consistent
    dialplan, every jump resolves, feature codes reachable from the phones' context."""
    rec = RECORDED.read_text()
    rec = rec.replace(" same => n,Gosub(sub-inbound,s,1(${EXTEN}))\n",
                      " same => n,Gosub(sub-inbound,s,1(${EXTEN}))\n"
                      " same => n,Gosub(textback-inbound,s,1)\n")
    rec = rec.replace(" same => n(closed),Set(TCSTATE=closed)\n",
                      " same => n(closed),Set(TCSTATE=closed)\n"
                      " same => n,Gosub(textback-mark-closed,s,1)\n")
    rec = rec.replace("[from-internal]\n", "[from-internal]\ninclude => textback-features\n")
    c = ac.merge(ac.parse(rec), conf(PLAIN))
    _check_targets(c, freepbx=False)
    routes = c.contexts["from-trunk"].extens
    assert all(any(s.args == "textback-inbound,s,1" for s in steps) for steps in routes.values())
    assert dv.CTX_FEATURES in c.contexts["from-internal"].includes
    # the phones' own codes do not collide with ours
    assert not set(c.contexts["from-internal"].extens) & {dv.FEATURE_CALLBACK, dv.FEATURE_TEXTAGAIN}


def test_freepbx_trunk_context_goes_on_to_from_pstn():
    c = conf(FREEPBX)
    ctx = c.contexts[dv.CTX_FREEPBX_TRUNK]
    assert set(ctx.extens) == {"_X.", "_+X.", "s"}
    for steps in ctx.extens.values():
        assert [s.app for s in steps] == ["Set", "Goto"]
        assert steps[1].args == "from-pstn,${EXTEN},1"
    assert dv.CTX_FEATURES in c.contexts["from-internal-custom"].includes
    # nothing of ours in from-pstn-custom: a priority there would shadow every DID route's
    assert "from-pstn-custom" not in c.contexts


# ---- names: the snippets and dialplan_vars agree, both ways -------------------------------------------
def _asterisk_names(text: str) -> dict[str, set[str]]:
    c = ac.parse(text)
    code = " ".join(f"{s.app}({s.args})" for _, s in c.steps())     # comments are gone
    names = {"vars": set(re.findall(r"\bTEXTBACK_[A-Z_]+\b", code)),
             "contexts": {n for n in c.contexts if n.startswith("textback-") or n.endswith("-textback")},
        "events": set(), "headers": set(), "scripts": set()}
    for _, s in c.steps():
        if s.app == "UserEvent":
            name, headers = ac.user_event(s)
            names["events"].add(name)
            names["headers"] |= {h for h, _ in headers}
        if s.app == "AGI":
            names["scripts"].add(urlparse(ac.split_args(s.args)[0]).path.lstrip("/"))
        for var in re.findall(r"\$\{([A-Z_]+)\}", s.args):
            assert var.startswith("TEXTBACK_") or var in dv.STOCK_VARS, f"undeclared {var}"
    return names


def test_every_asterisk_name_is_declared_and_every_declared_name_is_used():
    used: dict[str, set[str]] = {}
    for path in (PLAIN, FREEPBX):
        for k, v in _asterisk_names(path.read_text()).items():
            used.setdefault(k, set()).update(v)
    assert used["vars"] == set(dv.TEXTBACK_VARS) - set(dv.ORIGINATE_VARS)
    assert used["contexts"] == set(dv.CONTEXTS)
    assert used["events"] == {dv.OUTCOME_EVENT}
    assert used["headers"] == set(dv.OUTCOME_HEADERS)
    assert used["scripts"] == set(dv.AGI_SCRIPTS)


# ---- FreeSWITCH -----------------------------------------------------------------------------------------
FS_APPS = {"answer", "event", "playback", "hangup", "transfer", "export", "set"}


def _fs_extensions():
    root = ET.parse(FS_XML).getroot()
    assert root.tag == "include"
    exts = root.findall("extension")
    assert exts and len(exts) == len(list(root))
    return exts


def _event_headers(data: str) -> dict[str, str]:
    out = {}
    for part in data.split(","):                   # mod_dptools' event app splits on commas
        k, sep, v = part.partition("=")
        assert sep and k, part
        out[k] = v
    return out


def test_freeswitch_structure():
    names = set()
    for ext in _fs_extensions():
        assert ext.get("name") not in names
        names.add(ext.get("name"))
        [cond] = ext.findall("condition")
        assert cond.get("field") == "destination_number"
        re.compile(cond.get("expression"))
        actions = cond.findall("action")
        assert actions and all(a.get("application") in FS_APPS and a.get("data") is not None
                               or a.get("application") in ("answer", "hangup") for a in actions)
        for a in actions:
            if a.get("application") == "event":
                h = _event_headers(a.get("data"))
                assert h["Event-Name"] == "CUSTOM"
                assert h["Event-Subclass"] in (dv.FS_OUTCOME_SUBCLASS, dv.FS_FEATURE_SUBCLASS)


def _fs_by_dest(dest: str):
    for ext in _fs_extensions():
        cond = ext.find("condition")
        m = re.match(cond.get("expression"), dest)
        if m:
            return m, cond.findall("action")
    return None, []


@pytest.mark.parametrize("code, feature", [(dv.FEATURE_CALLBACK, dv.FS_FEATURE_CALLBACK),
                                           (dv.FEATURE_TEXTAGAIN, dv.FS_FEATURE_TEXTAGAIN)])
def test_freeswitch_feature_codes_fire_our_event(code, feature):
    m, actions = _fs_by_dest(code)
    assert m is not None
    apps = [a.get("application") for a in actions]
    assert apps[0] == "answer" and apps[-1] == "hangup" and "event" in apps
    [ev] = [a for a in actions if a.get("application") == "event"]
    h = _event_headers(ev.get("data"))
    assert h["Event-Subclass"] == dv.FS_FEATURE_SUBCLASS
    assert h[dv.FS_H_FEATURE] == feature
    assert h[dv.FS_H_ENDPOINT] == "user/${user_name}@${domain_name}"


def test_freeswitch_closed_marker_marks_then_goes_on():
    m, actions = _fs_by_dest(dv.FS_EXT_CLOSED_PREFIX + "5999")
    assert m is not None and m.group(1) == "5999"
    apps = [(a.get("application"), a.get("data")) for a in actions]
    assert apps[0] == ("export", f"{dv.FS_VAR_AFTER_HOURS}=1")
    h = _event_headers(apps[1][1])
    assert h["Event-Subclass"] == dv.FS_OUTCOME_SUBCLASS and h[dv.H_AFTER_HOURS] == "1"
    assert apps[-1] == ("transfer", "$1 XML default")
    # the codes and the marker do not catch the recorded PBX's own numbers
    for dest in ("5999", "1000", "*98", "2000"):
        assert _fs_by_dest(dest)[0] is None


def test_every_freeswitch_name_is_declared_and_every_declared_name_is_used():
    text = FS_XML.read_text()
    body = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    body = re.sub(r'<extension name="[^"]*"', "<extension", body)     # labels, not shared
    used = set(re.findall(r"textback::\w+", body)) | set(re.findall(r"Textback-[A-Za-z]+", body))
    used |= set(re.findall(r"\btextback_[a-z_]+\b", body))
    used |= {p for p in re.findall(r"textback-[a-z]+-", body)}
    assert used == set(dv.FS_NAMES) - set(dv.FS_ORIGINATE_VARS)


def test_tracker_sees_the_freepbx_trunk_context_as_inbound():
    s = Sim()
    ch = s.inbound("+13105550101", "+15125550100", context=dv.CTX_FREEPBX_TRUNK)
    leg = s.ring(ch, "100")
    s.dialend(ch, leg, "NOANSWER")
    s.hangup(leg, "19")
    s.hangup(ch)
    t = AsteriskTracker()
    [rec] = [r for ev in s.events for r in t.feed(ev)]
    assert rec.direction == "inbound"
