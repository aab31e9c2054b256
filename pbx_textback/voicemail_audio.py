"""The service's side of a voicemail recording: keep it with the caller's call for the inbox."""
from __future__ import annotations

import logging

log = logging.getLogger("pbx_textback.voicemail")


def keeper(svc):
    """on_recording for the voicemail listener: the recording stored with the caller's latest
    inbound call within the voicemail match window (else with the caller alone)."""
    from .pipeline import mask
    from .store import voicemail

    def keep(fact, rec) -> None:
        now = svc.clock()
        peer = svc.pipeline.e164(fact.caller) if fact.caller else ""
        call = svc.store.latest_call_from(peer) if peer else None
        if call is not None and call.created_at < now - svc.cfg.smtp.match_minutes * 60:
            call = None                   # an old call of the same caller is not this one
        rid = voicemail.add(svc.store, peer=peer, call=call.id if call else None, mailbox=fact.mailbox or "",
                            rec=rec, now=now)
        log.info("voicemail recording %s kept (%d bytes, %s) for %s", rid, len(rec.audio),
                 f"{rec.duration_s:.0f} s" if rec.duration_s else "length unknown",
                 mask(peer) if peer else "an unknown caller")
    return keep
