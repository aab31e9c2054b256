"""The service's side of a voicemail recording: keep it with the caller's call for the inbox."""
from __future__ import annotations


def keeper(svc):
    """on_recording for the voicemail listener: the recording stored with the caller's latest
    inbound call within the voicemail match window (else with the caller alone)."""
    from .store import voicemail

    def keep(fact, rec) -> None:
        now = svc.clock()
        peer = svc.pipeline.e164(fact.caller) if fact.caller else ""
        call = svc.store.latest_call_from(peer) if peer else None
        if call is not None and call.created_at < now - svc.cfg.smtp.match_minutes * 60:
            call = None                   # an old call of the same caller is not this one
        # the listener's one line for this mail says it was kept: no second line here
        voicemail.add(svc.store, peer=peer, call=call.id if call else None, mailbox=fact.mailbox or "",
                      rec=rec, now=now)
    return keep
