"""What the SMSC sends us in deliver_sm / data_sm: delivery receipts (matched to the text they
report on) and callers' replies (long ones put back together from their parts)."""
from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from . import pdu as P
from .dlr import make_report
from .reassembly import MoParts, valid_concat

if TYPE_CHECKING:
    from .transport import SmppTransport

log = logging.getLogger("pbx_textback.smpp")


@dataclass(frozen=True)
class InboundSms:
    source: str                       # the caller
    dest: str                         # our number
    text: str
    received_at: datetime
    data_coding: int = 0
    parts: int = 1
    incomplete: bool = False          # parts missing after mo_reassembly_timeout


class Inbound:
    """deliver_sm / data_sm -> the transport's on_dlr / on_mo; each returns the status for
    the _resp (a temporary error makes the SMSC resend)."""

    def __init__(self, t: "SmppTransport"):
        self.t = t
        self.settings = t.settings
        self.stats = t.stats
        self.parts = MoParts()

    async def deliver(self, p) -> int:
        """Handle one deliver_sm; returns the deliver_sm_resp status."""
        esm = p.esm_class or 0
        if esm & 0x24:                 # 0x04 delivery receipt, 0x20 intermediate notification
            return await self._dlr(p)
        return self.mo(p)

    def sm_text(self, p) -> tuple[str, bytes]:
        sm = getattr(p, "short_message", None) or b""      # data_sm has none
        if not sm and getattr(p, "message_payload", None):
            sm = p.message_payload
        udh = b""
        if (p.esm_class or 0) & P.ESM_UDHI:
            udh, sm = P.split_udh(sm)
        s = self.settings
        return P.decode_text(sm, p.data_coding or 0, data_coding_default=s.data_coding_default,
                             gsm7_packed=s.gsm7_packed, udh_len=len(udh)), udh

    async def _dlr(self, p) -> int:
        text, _ = self.sm_text(p)
        report = make_report(receipted_message_id=getattr(p, "receipted_message_id", None),
                             message_state=getattr(p, "message_state", None),
                             network_error_code=getattr(p, "network_error_code", None),
                             text=text, handset=P.text_field(p.source_addr),
                             sender=P.text_field(p.destination_addr), received_at=self.t.clock(),
                             match=self.t.ids.match)
        if report is None:
            log.warning("SMPP delivery receipt without a message id: %r", text[:200])
            return P.ESME_ROK
        self.stats["dlr"] += 1
        if log.isEnabledFor(logging.INFO):      # one per text: its parts not made for nothing
            log.info("SMPP DLR id=%s state=%s%s%s", report.message_id, report.state,
                     f" ({report.error})" if report.error else "",
                     f" msg_ref={report.msg_ref}" if report.msg_ref else "")
        if self.t.on_dlr is None:
            return P.ESME_ROK
        try:
            r = self.t.on_dlr(report)
            if inspect.isawaitable(r):
                await r
        except Exception:
            log.exception("SMPP on_dlr failed for %s: asking the SMSC to resend", report.message_id)
            return P.ESME_RX_T_APPN
        return P.ESME_ROK

    def mo(self, p) -> int:
        text, udh = self.sm_text(p)
        source, dest = P.text_field(p.source_addr), P.text_field(p.destination_addr)
        dc = p.data_coding or 0
        concat = P.concat_info(udh) if udh else None
        if concat is None and getattr(p, "sar_msg_ref_num", None) is not None:
            sar = (p.sar_msg_ref_num, getattr(p, "sar_total_segments", None),
                   getattr(p, "sar_segment_seqnum", None))
            if valid_concat(*sar):
                concat = sar
            else:                    # as a UDH that names no valid part: one whole text
                log.warning("SMPP MO from %s: SAR TLVs ref=%r total=%r seq=%r are not a valid "
                            "part: taken as a whole text", source, *sar)
        if concat is None or concat[1] <= 1:
            return self._hand_over(InboundSms(source, dest, text, self.t.clock(), dc))
        ref, total, seq = concat
        key = (source, dest, ref, total)
        full = self.parts.add(key, total, seq, text, time.monotonic(), dc)
        for old in self.parts.overflow():          # too many half texts: the oldest go now
            self._hand_over_partial(old, self.parts.partial(old), old[3], dc)
        if full is None:
            return P.ESME_ROK          # held in memory until the rest arrives
        status = self._hand_over(InboundSms(source, dest, full, self.t.clock(), dc, total))
        if status == P.ESME_ROK:
            self.parts.done(key)
        return status

    def _hand_over_partial(self, key, text: str, total: int, dc) -> None:
        source, dest = key[0], key[1]
        msg = InboundSms(source, dest, text, self.t.clock(), dc or 0, total, incomplete=True)
        if self._hand_over(msg) == P.ESME_ROK:
            self.parts.done(key)

    def _hand_over(self, msg: InboundSms) -> int:
        if self.t.on_mo is None:
            log.error("SMPP MO from %s but no on_mo handler: asking the SMSC to resend", msg.source)
            return P.ESME_RX_T_APPN
        try:
            ok = self.t.on_mo(msg)
        except Exception:
            log.exception("SMPP on_mo failed for a reply from %s: asking the SMSC to resend",
                          msg.source)
            ok = False
        if ok:
            self.stats["mo"] += 1
            log.info("SMPP MO from %s to %s stored (%d chars)", msg.source, msg.dest, len(msg.text))
            return P.ESME_ROK
        self.stats["mo_refused"] += 1
        log.warning("SMPP MO from %s not stored: answered %s so the SMSC resends it",
                    msg.source, P.status_name(P.ESME_RX_T_APPN))
        return P.ESME_RX_T_APPN

    def sweep(self) -> None:
        """Long replies still missing parts after mo_reassembly_timeout: hand over what came."""
        limit = time.monotonic() - self.settings.mo_reassembly_timeout
        for key, text, total, dc in self.parts.expired(limit):
            self._hand_over_partial(key, text, total, dc)
