"""`pbx-textback whatif -c NEW.toml --since 7d`: the calls already in the store, re-decided under
a proposed config by the service's own pipeline, outbox and gate on their own clock
(simulate.py), against what really happened: texts that would go out or not, other wording,
later or earlier sends, per line and cause, with a few example calls each.

The store is read once, read-only, and closed before the simulation starts (an in-memory
store); nothing is sent. What is replayed: every call (its stored CallRecord, decided at the
time the service decided it), callers' replies (STOP, HELP, ...) and opt-outs/opt-ins made by
hand, each at its own time; an `hours set` override in force when a call was decided applies
to it again (its recorded hours check names it: the store keeps no history of overrides).
Not replayed: pauses (only the current one is kept): a text a pause held shows as sent
earlier, with that cause.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import Counter, defaultdict

from pbx_textback.core.model import INBOUND, CallRecord
from pbx_textback.core.policy.decide import find_line
from pbx_textback.core.policy import consent as consent_mod
from pbx_textback.core.times import iso
from pbx_textback.replay.simulate import Simulation
from pbx_textback.store import db as st
from pbx_textback.store.history import read_history

WENT_OUT = {st.SENT, st.DELIVERED, st.NO_RECEIPT, st.UNKNOWN}   # the service handed it over
WAITING = {st.PENDING, st.SENDING}      # not yet due: it goes out at its due time unless...
EARLY_LATE_S = 1.0            # the real service sends within milliseconds of the due time
_COLLAPSED = re.compile(r"collapsed into the waiting text #(\d+)")
_OVERRIDE = re.compile(r"^(open|closed): manual override")
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class WhatifError(Exception):
    pass


def parse_since(s: str, now: float) -> float:
    """7d, 36h, 2w, 90m (back from now) or an ISO-8601 date/time."""
    m = _SINCE.match(s.strip())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    from datetime import datetime
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise WhatifError(f"--since {s!r}: give 7d, 36h, 2w, 90m or an ISO-8601 time") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return dt.timestamp()


# ---- running the history through the simulation ------------------------------------------------
def _override_of(checks) -> str | None:
    """The `hours set` override in force when the call was decided, from its recorded hours
    check (the store keeps no history of overrides, but each decision names the one it saw)."""
    for ch in checks:
        if ch.get("name") == "hours":
            m = _OVERRIDE.match(ch.get("detail", ""))
            return m.group(1) if m else None
    return None


async def simulate(cfg, hist, now: float):
    """Every stored event in time order through a Simulation; returns (fates, verdict by call)."""
    events = []
    many_boxes = len({c["box"] for c in hist.calls}) > 1
    for c in hist.calls:
        try:
            rec = CallRecord.from_dict(c["record"])
        except (TypeError, ValueError):
            continue              # a row written by something else: nothing to re-decide
        if many_boxes:            # call ids are unique per box only
            rec = dataclasses.replace(rec, call_id=f"{c['box']}/{rec.call_id}")
        events.append((c["created_at"], 0, "call", (c, rec)))
    reply_keys = set()
    for r in hist.replies:
        events.append((r["created_at"], 1, "reply", r))
        reply_keys.add((r["peer"], round(r["created_at"], 3)))
    for ev in hist.consent:
        if (ev["number"], round(ev["at"], 3)) not in reply_keys:     # a reply's STOP is replayed as the reply
            events.append((ev["at"], 2, "consent", ev))
    events.sort(key=lambda e: (e[0], e[1]))
    start = events[0][0] if events else now
    sim = Simulation(cfg, start)
    verdicts = {}
    try:
        for at, _, kind, item in events:
            if kind == "call":
                c, rec = item
                line = find_line(cfg, rec.called) if rec.direction == INBOUND else None
                held = _override_of(c["checks"]) if line is not None else None
                if held:       # `hours set` then: in force for this call again
                    sim.store.set_hours_override(line.number, held, at)
                verdicts[c["key"]] = await sim.call(rec, at=at, now=at)
                if held:
                    sim.store.set_hours_override(line.number, "auto", at)
            elif kind == "reply":
                await sim.advance(at)
                sim.reply(item["peer"], item["line"], item["body"], at=at, transport=item.get("transport", ""))
            else:
                await sim.advance(at)
                with sim.store.write():
                    sim.store.add_consent(consent_mod.ConsentEvent(
                        item["kind"], item["number"], at, scope=item["scope"], line=item["line"],
                        source=item["source"], lang=item["lang"]))
                if item["kind"] == consent_mod.OPT_OUT:
                    sim.store.cancel_pending(item["number"], f"caller opted out: {item['source']!r}", at)
        # played out to the end, as the real store's waiting texts are taken to go at their due time
        fates = await sim.finish()
        return fates, verdicts
    finally:
        sim.close()


# ---- comparing ----------------------------------------------------------------------------------
def _real_by_call(hist) -> tuple[dict, dict]:
    """(call key -> the real missed-call text created for it, call key -> the waiting text it
    was collapsed into)."""
    texts = {t["id"]: t for t in hist.texts if t["kind"] == "missed-call"}
    by_call_id = {}
    for t in texts.values():
        by_call_id.setdefault(t["call_id"], t)
    own, joined = {}, {}
    for c in hist.calls:
        t = by_call_id.get(c["call_id"])
        if t is not None:
            own[c["key"]] = t
        for ch in c["checks"]:
            m = _COLLAPSED.search(ch.get("detail", ""))
            if m and int(m.group(1)) in texts:
                joined[c["key"]] = texts[int(m.group(1))]
    return own, joined


def _sim_by_call(fates, hist, many_boxes: bool) -> tuple[dict, dict]:
    """The same for the simulation: its texts list the calls they answer, the first its own."""
    key_of = {(f"{c['box']}/{c['call_id']}" if many_boxes else c["call_id"]): c["key"] for c in hist.calls}
    own, joined = {}, {}
    for f in fates:
        if f.kind != "missed-call":
            continue
        for i, cid in enumerate(f.calls):
            if cid in key_of:
                (joined if i else own)[key_of[cid]] = f
    return own, joined


def _no_text_cause(checks) -> str:
    failed = [c for c in checks if not c["ok"]]
    if any(_COLLAPSED.search(c["detail"]) for c in failed):
        return "collapsed into an earlier waiting text"
    names = [c["name"] for c in failed if c["name"] != "missed"]
    return "blocked: " + ", ".join(names) if names else "not missed"


def _fate_cause(state: str, why: str) -> str:
    w = why.lower()
    if state == "cancelled":
        return ("cancelled: the caller was reached before it was due" if "reached" in w
                else "cancelled: opted out" if "opted out" in w else "cancelled")
    if state == "expired":
        return "expired: " + why.split(":")[0]
    if state in ("held", "pending"):
        return "still waiting at the end" if state == "pending" else "held: " + why
    return state


def compare(hist, fates, verdicts, tz: str | None = None) -> list[dict]:
    """One row per inbound call whose own text changed (or that now joins another's): line,
    reason, change, cause, before, after."""
    many_boxes = len({c["box"] for c in hist.calls}) > 1
    (r_own, r_joined), (s_own, s_joined) = _real_by_call(hist), _sim_by_call(fates, hist, many_boxes)
    rows = []
    for c in hist.calls:
        if c["direction"] != INBOUND:
            continue
        v = verdicts.get(c["key"])
        r, s = r_own.get(c["key"]), s_own.get(c["key"])
        r_out = r is not None and r["state"] in WENT_OUT | WAITING
        s_out = s is not None and s.state == "sent"
        line = (v.decision.line if v is not None and v.decision.line else "") or c["line"] or c["called"]
        row = {"call_id": c["call_id"], "caller": c["caller"], "line": line, "reason": c["reason"],
               "at": c["created_at"]}
        r_at = None
        if r_out:
            r_at = r["due_at"] if r["state"] in WAITING else (r["written_at"] or r["updated_at"])
        if r_out and not s_out:
            if s is not None:
                cause = _fate_cause(s.state, s.why)
            elif v is not None:
                cause = _no_text_cause([ch.to_dict() for ch in v.decision.checks])
            else:
                cause = "not re-decided (its stored record could not be read)"
            rows.append({**row, "change": "no longer texted", "cause": cause,
                         "before": f"sent {iso(r_at, tz)}", "after": cause})
        elif s_out and not r_out:
            cause = (f"was {r['state']}" + (f" ({r['note']})" if r["note"] else "")) if r is not None \
                else _no_text_cause(c["checks"])
            rows.append({**row, "change": "newly texted", "cause": "before: " + cause,
                         "before": cause, "after": f"sent {iso(s.sent_at, tz)}"})
        elif r_out and s_out and r["body"] != s.body:
            cause = (f"says {s.calls_missed} missed calls instead of {r['calls_missed']}"
                     if s.calls_missed != r["calls_missed"] else "other wording (template)")
            rows.append({**row, "change": "different text", "cause": cause,
                         "before": r["body"], "after": s.body})
        elif r_out and s_out and abs(s.sent_at - r_at) >= EARLY_LATE_S:
            shift = s.sent_at - r_at
            why = "quiet hours" if "quiet hours" in s.why else "delay"
            if "paused" in (r["note"] or ""):
                why = "texting was paused then (pauses are not replayed)"
            rows.append({**row, "change": "later" if shift > 0 else "earlier", "cause": why,
                         "shift_s": round(shift, 1), "before": f"sent {iso(r_at, tz)}",
                         "after": f"sent {iso(s.sent_at, tz)}"})
        elif not r_out and not s_out and (c["key"] in s_joined) != (c["key"] in r_joined):
            # no text of its own either way, but now counted in another's text (or no longer)
            if c["key"] in s_joined:
                j = s_joined[c["key"]]
                rows.append({**row, "change": "joins an earlier text", "cause": "collapsed: one text for "
                             "several calls", "before": _no_text_cause(c["checks"]),
                             "after": f"counted in text to {j.peer} sent {iso(j.sent_at, tz)} "
                                      f"({j.calls_missed} missed calls)" if j.state == "sent" else
                                      f"counted in a text that is {j.state}"})
            else:
                cause = _no_text_cause([ch.to_dict() for ch in v.decision.checks]) if v else "not re-decided"
                rows.append({**row, "change": "no longer joins an earlier text", "cause": cause,
                             "before": f"counted in text #{r_joined[c['key']]['id']}", "after": cause})
    return rows


def summary(hist, fates, rows, examples: int = 3) -> dict:
    real_sent = [t for t in hist.texts if t["state"] in WENT_OUT | WAITING]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["line"], r["change"], r["cause"])].append(r)
    out = []
    for (line, change, cause), rs in sorted(groups.items()):
        g = {"line": line, "change": change, "cause": cause, "calls": len(rs),
             "reasons": dict(sorted(Counter(x["reason"] for x in rs).items())),
             "examples": [{k: x[k] for k in ("call_id", "caller", "reason", "at", "before", "after")}
                          for x in rs[:examples]]}
        shifts = [x["shift_s"] for x in rs if "shift_s" in x]
        if shifts:
            g["shift_s"] = {"min": min(shifts), "max": max(shifts)}
        out.append(g)
    kinds = ("missed-call", "follow-up")
    return {"calls": len(hist.calls),
            "missed": sum(1 for c in hist.calls if c["missed"]),
            "before": {k: sum(1 for t in real_sent if t["kind"] == k) for k in kinds},
            "after": {k: sum(1 for f in fates if f.kind == k and f.state == "sent") for k in kinds},
            "changes": out}


def run(cfg, *, store_path: str, dsn: str, since: float, as_json: bool, examples: int = 3,
        now: float | None = None, label: str = "") -> int:
    now = time.time() if now is None else now
    hist = read_history(store_path, dsn, since)
    fates, verdicts = asyncio.run(simulate(cfg, hist, now))
    tz = cfg.business.timezone
    rows = compare(hist, fates, verdicts, tz)
    s = summary(hist, fates, rows, examples)
    if as_json:
        print(json.dumps({"since": iso(since, tz), "config": label, **_iso_examples(s, tz)},
                         ensure_ascii=False))
        return 0
    print(f"whatif: {s['calls']} calls since {iso(since, tz)} ({s['missed']} missed), decided again "
          f"under {label or 'the new config'}; nothing sent, the store unchanged")
    print(f"texts sent (or due): {s['before']['missed-call']} -> {s['after']['missed-call']}"
          f"   follow-ups: {s['before']['follow-up']} -> {s['after']['follow-up']}")
    if not s["changes"]:
        print("no difference: every call would have had the same text at the same time")
        return 0
    line = None
    for g in s["changes"]:
        if g["line"] != line:
            line = g["line"]
            print(f"\nline {line}:")
        reasons = ", ".join(f"{k} {n}" for k, n in g["reasons"].items())
        shift = ""
        if "shift_s" in g:
            lo, hi = g["shift_s"]["min"], g["shift_s"]["max"]
            shift = f" by {abs(lo):g} s" if lo == hi else f" by {abs(lo):g}-{abs(hi):g} s"
        print(f"  {g['change']}{shift}: {g['calls']} call{'s' if g['calls'] != 1 else ''} "
              f"({g['cause']}; {reasons})")
        for e in g["examples"]:
            print(f"    call {e['call_id']} from {e['caller']} at {iso(e['at'], tz)} ({e['reason']}):"
                  f"\n      before: {e['before']}\n      after:  {e['after']}")
    return 0


def _iso_examples(s: dict, tz: str) -> dict:
    for g in s["changes"]:
        for e in g["examples"]:
            e["at"] = iso(e["at"], tz)
    return s
