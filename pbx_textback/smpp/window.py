"""Writes queued parts to the bound link as fast as the window (submit_sm outstanding) and
the rate allow, and notices a part the SMSC never answers."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import pdu as P
from .submits import Part
from ..wakeup import Wakeup

if TYPE_CHECKING:
    from .link import Link
    from .transport import SmppTransport


class Window:
    def __init__(self, t: "SmppTransport"):
        self.t = t
        self.settings = t.settings
        self.stats = t.stats
        self.rate = t.rate
        self.submits = t.submits
        self._sleep = Wakeup()         # until woken, or until the rate says when
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self._sleep.reset()
        self.task = asyncio.create_task(self._dispatch(), name="smpp-dispatch")

    def wake(self) -> None:
        self._sleep.wake()

    def send_link(self) -> "Link | None":
        for link in self.t.links:
            if link.sends and link.bound:
                return link
        return None

    async def _dispatch(self) -> None:
        s, rate, sub = self.settings, self.rate, self.submits
        loop = asyncio.get_running_loop()
        while not self.t.stopping:
            self._sleep.woken = False
            link = self.send_link()
            now = loop.time()
            timeout = None
            if not sub.queue or link is None or len(link.inflight) >= s.window:
                pass
            elif now < rate.paused_until:
                timeout = rate.paused_until - now
            elif now < rate.next_send:
                timeout = rate.next_send - now
            else:
                # everything the window and the rate allow now, in one write (one syscall)
                batch = []
                while sub.queue and len(link.inflight) < s.window and now >= rate.next_send:
                    part = sub.queue.popleft()
                    if not part.job.looked and not sub.look(part.job):
                        continue                    # held, cancelled or expired: not written
                    batch.append(self._send(link, part, now))
                link.write(b"".join(batch))   # no await since the last looks above
                w = link.writer
                if w is not None and w.transport.get_write_buffer_size() > 65536:
                    await w.drain()
                continue
            await self._sleep.sleep(timeout)    # at once if woken while writing or draining

    def _send(self, link: "Link", part: Part, now: float) -> bytes:
        """Register one part as written on `link`; returns its submit_sm bytes."""
        s, spec, job = self.settings, part.spec, part.job
        seq = link.seqs.next_sequence()
        # smpplib's octets without its objects
        data = P.submit_sm(seq, service_type="", source_addr_ton=s.source_ton, source_addr_npi=s.source_npi,
                           source_addr=P.address(job.source, s.source_ton),
                           dest_addr_ton=s.dest_ton, dest_addr_npi=s.dest_npi,
                           destination_addr=P.address(job.to, s.dest_ton),
                           esm_class=spec.esm_class, protocol_id=0, priority_flag=0,
                           registered_delivery=1 if s.registered_delivery else 0,
                           replace_if_present_flag=0, data_coding=spec.data_coding, sm_default_msg_id=0,
                           short_message=spec.short_message, message_payload=spec.message_payload)
        part.link, part.seq = link, seq
        part.written += 1
        link.inflight[seq] = part
        part.timer = asyncio.get_running_loop().call_later(
            s.response_timeout, self._submit_timeout, link, seq)
        self.stats["submit_sm"] += 1
        part.wseq = self.rate.written(now)
        return data

    def _submit_timeout(self, link: "Link", seq: int) -> None:
        part = link.inflight.pop(seq, None)
        if part is not None:
            link.late[seq] = part                  # a late answer still tells what happened
            if len(link.late) > 10_000:
                link.late.popitem(last=False)
            self.submits.unknown(part, f"no submit_sm_resp in {self.settings.response_timeout:g}s")
            self.wake()
