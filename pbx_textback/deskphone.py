"""The desk phones, through the service's own PBX connection: "Call back" from the inbox (the
agent's phone rings first, then its outbound route dials the caller) and callers' replies
pushed to the phones' screens as SIP MESSAGE.

Both reuse what `*88` and the PBX transport already do: the `callback` table (so *88 does not
call again a caller the inbox reached), the Originate / `originate` shape (core.pbx.originate),
AMI MessageSend and FreeSWITCH `chat` (sip/via_pbx.py). The result of a call back is what the
PBX answers (OriginateResponse: did the desk phone answer) plus the PBX's own record of the
call it made (the tracker sees the outbound call: answered or busy), so a connected call back
cancels a waiting text through the pipeline's existing "caller reached" rule.

Push limit (one per conversation per minute) lives in memory, not the store: only this
process pushes this box's replies, and a restart forgetting the last minute costs at most one
extra push, while a row per push would be a write on every reply.
"""
from __future__ import annotations

import asyncio
import logging
import time

from .core.pbx import originate as og
from .core.text import deskpush
from .pipeline import mask
from .store import deskphones as sd

log = logging.getLogger("pbx_textback.deskphone")

PUSHED_INTENTS = ("message", "review")      # STOP/START/HELP are handled, not read by a person
POLL_S = 1.0
ANSWER_GRACE_S = 25                         # OriginateResponse comes at most ring time after


class Refused(Exception):
    """A call back that cannot start; the message is for the agent."""


class DeskPhones:
    def __init__(self, cfg, store, *, send_action=None, esl_api=None, esl_bgapi=None, clock=time.time):
        """send_action: AmiSource.send_action (Asterisk); esl_api / esl_bgapi: EslChild.api /
        .bgapi (FreeSWITCH). The originate goes by bgapi: an `api originate` would hold the
        event socket - and every `chat` the outbox sends on it - until the desk phone answers."""
        self.cfg, self.store, self.clock = cfg, store, clock
        d = cfg.deskphones
        self.fs = cfg.pbx.type == "freeswitch"
        self.channel = d.channel or ("user/{ext}" if self.fs else "PJSIP/{ext}")
        self.context = d.context or ("default" if self.fs else "from-internal")
        self.message_to = d.message_to or ("" if self.fs else "pjsip:{ext}")
        self.message_from = d.message_from or (
            f"textback@{self.message_to.split('@', 1)[1]}" if self.fs and "@" in self.message_to else "")
        self.ring_s = d.ring_seconds
        self.send_action, self.esl_api, self.esl_bgapi = send_action, esl_api, esl_bgapi
        self.jobs: dict[str, asyncio.Future] = {}        # bgapi Job-UUID -> its BACKGROUND_JOB's body
        self.early: dict[str, str] = {}                  # BACKGROUND_JOBs that came before their reply
        self.throttle = deskpush.Throttle()
        self.tasks: set[asyncio.Task] = set()

    @property
    def connected(self) -> bool:
        return self.send_action is not None or self.esl_api is not None

    # ---- call back ---------------------------------------------------------------------------
    def why_not(self, extension: str) -> str:
        """Why this agent cannot call back from the page ('' = they can)."""
        if not self.connected:
            return "Call back needs the service's PBX connection; this inbox has none."
        if not extension:
            return ("Call back rings your desk phone first: you have no extension. An admin sets it "
                    "with `pbx-textback user add NAME --extension 100`.")
        if not og.valid_extension(extension):
            return f"Your extension {extension!r} is not one a desk phone can have."
        return ""

    async def call_back(self, peer: str, agent: str, extension: str) -> int:
        why = self.why_not(extension)
        if why:
            raise Refused(why)
        channel = og.desk_channel(self.channel, extension)
        try:
            if self.fs:
                cmd = og.fs_originate(channel, self.context, peer, ring_seconds=self.ring_s)
            else:
                og.ami_originate(channel, self.context, peer, ring_seconds=self.ring_s)
        except ValueError as e:
            raise Refused(f"Cannot call this number: {e}") from None
        cb = sd.start(self.store, peer=peer, endpoint=channel, agent=agent, now=self.clock())
        if self.fs:
            send, read = (lambda: self._bgapi(cmd, self.ring_s + ANSWER_GRACE_S)), og.fs_result
        else:
            act = og.ami_originate(channel, self.context, peer, ring_seconds=self.ring_s,
                                   action_id=f"textback-cb-{cb}")
            send, read = (lambda: self.send_action(act, timeout=self.ring_s + ANSWER_GRACE_S)), og.ami_result
        log.info("call back %d by %s: ringing %s, then %s", cb, agent, channel, mask(peer))
        self._spawn(self._originate(cb, send, read))
        return cb

    async def _originate(self, cb: int, send, read) -> None:
        try:
            try:
                res = await send()
            except asyncio.CancelledError:
                raise
            except Exception as e:          # not connected, connection lost, no answer in time
                ok, why, uid = False, f"the PBX did not take it: {type(e).__name__}: {e}".rstrip(": "), ""
            else:
                ok, why, uid = read(res)
            sd.finish(self.store, cb, ok=ok, detail="" if ok else why, channel_id=uid, now=self.clock())
            log.info("call back %d: %s", cb, why)
        except asyncio.CancelledError:
            sd.finish(self.store, cb, ok=False, detail="the service stopped before the PBX answered",
                      channel_id="", now=self.clock())
            raise

    async def _bgapi(self, cmd: str, timeout: float) -> str:
        """`bgapi <cmd>`, then the answer FreeSWITCH sends in the BACKGROUND_JOB event."""
        job = (await self.esl_bgapi(cmd, timeout=5)).strip()
        if job in self.early:
            return self.early.pop(job)
        fut = asyncio.get_running_loop().create_future()
        self.jobs[job] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.jobs.pop(job, None)

    def on_job(self, ev: dict) -> None:
        """A BACKGROUND_JOB event (the service hands each one here, in stream order)."""
        job, body = ev.get("Job-UUID", ""), ev.get("_body") or ""
        fut = self.jobs.get(job)
        if fut is not None and not fut.done():
            fut.set_result(body)
        elif job and ev.get("Job-Command") == "originate":
            self.early[job] = body                      # ours, before bgapi's reply was read
            while len(self.early) > 100:
                self.early.pop(next(iter(self.early)))

    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # ---- replies to desk phones ------------------------------------------------------------------
    async def run(self) -> None:
        """Watch the store for callers' replies (whichever transport brought them) and push each."""
        if not self.cfg.deskphones.push_replies or not self.connected:
            return await self._idle()
        if not self.message_to:
            log.warning("replies are not pushed to desk phones: set [deskphones] message_to "
                        "(e.g. \"{ext}@pbx.example.com\", the FreeSWITCH domain)")
            return await self._idle()
        last = sd.last_reply_id(self.store)
        try:
            while True:
                await asyncio.sleep(POLL_S)
                try:
                    last = await self.tick(last)
                except Exception:
                    log.exception("pushing replies to desk phones failed; trying again")
        finally:
            await self.stop()        # call backs still waiting for the PBX: recorded as stopped

    async def _idle(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def tick(self, last: int) -> int:
        now = self.clock()
        out = []
        for mid, peer, body, note in sd.replies_after(self.store, last):
            last = mid
            if (note or "").split(" ", 1)[0].split(":", 1)[0] in PUSHED_INTENTS:
                out += self.throttle.offer(peer, body, now)
        out += self.throttle.due(now)
        for peer, body, more in out:
            await self.push(peer, deskpush.push_text(peer, body, more))
        return last

    async def push(self, peer: str, text: str) -> None:
        owner, exts = sd.push_targets(self.store, peer)
        if not exts:
            log.info("reply from %s not pushed: %s", mask(peer),
                     f"{owner} has no desk-phone extension" if owner else "no agent has an extension")
            return
        done = []
        for ext in exts:
            try:
                await self._send_message(ext, text)
            except Exception as e:       # a notice lost, never the reply: it is in the store
                log.warning("reply from %s not pushed to extension %s: %s", mask(peer), ext, e)
            else:
                done.append(ext)
        if done:
            log.info("reply from %s pushed to %s (%s)", mask(peer), ", ".join(done), owner or "unassigned")

    async def _send_message(self, ext: str, text: str) -> None:
        to = self.message_to.replace("{ext}", ext)
        if self.fs:
            from .sip.via_pbx import escape_chat_field
            res = await self.esl_api(f"chat sip|{escape_chat_field(self.message_from)}|"
                                     f"{escape_chat_field(to)}|{escape_chat_field(text)}", timeout=10)
            if "Sent" not in str(res):
                raise RuntimeError(f"FreeSWITCH answered {str(res)[:80]!r}")
            return
        act = {"Action": "MessageSend", "Destination": to, "Body": text}
        if self.message_from:
            act["From"] = self.message_from
        res = await self.send_action(act, timeout=5)
        res = res[0] if isinstance(res, list) and res else res
        if str(res.get("Response", "")).lower() != "success":
            raise RuntimeError(f"AMI MessageSend: {res.get('Message', 'error')}")

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
