"""Texts sent THROUGH the PBX, which already holds the trunk's registration and credentials.

AmiMessageTransport: Asterisk AMI `MessageSend` (res_pjsip_messaging).
- `Response: Success` (`Message: Message successfully sent`) comes when Asterisk has queued the
  message, before the far end's SIP answer (recorded: tests/fixtures/asterisk/messagesend.ami),
  so "sent" here means "accepted by the PBX"; transport_id is the action's ActionID.
- `Response: Error` / `Message: Permission denied`: the AMI session lacks the `message` write
  class (recorded with the shipped manager.conf). Asterisk fixes a session's permissions at
  login, so after the admin adds `message` and runs `manager reload` the running session is
  still refused: the transport logs in again (at most once a minute) and retries; refused on
  the fresh session -> failed, with the fix and the `pbx-textback resend ID` to use after it.
- `Message technology not found.`: nothing registered the `pjsip:` message tech, i.e.
  res_pjsip_messaging is not loaded (Asterisk's main/message.c) -> failed, with the fix.
- Destination: PJSIP reads `pjsip:X@Y` as endpoint X (the domain is discarded, res_pjsip_
  messaging's get_outbound_endpoint), so a caller's number must go after a slash:
  `pjsip:<trunk endpoint>/sip:{peer}@<provider host>`. A template of the form `pjsip:{peer}@...`
  is refused at construction for that reason.
- A body with a line break goes as `Base64Body` (an AMI header cannot hold one).

EslChatTransport: FreeSWITCH `chat sip|FROM|<profile>/sip:TO|TEXT[|content-type]`.
- Reply `Sent` (FreeSWITCH 1.10 mod_dptools chat_api_function; the API runs with blocking=true,
  so it comes after the far end's 2xx - recorded: a MESSAGE event with Delivery-Result-Code 202
  before the API event) -> sent. `Error! Message Not Sent` -> retry: no 2xx came (refused, no
  answer, or no route); the error says where to look. `Invalid` -> failed (malformed command).
- The sending contract (outbox): `send(row, last_look)`; last_look() runs after the ESL checks,
  right before the command is written (EslChild.api's before_write). Not connected, or held by
  the last look -> retry (nothing written). Written and no answer - a timeout or the
  connection dropping, e.g. FreeSWITCH restarting - -> unknown: the chat may have gone out.
  Only FreeSWITCH's own refusal is `failed`; a timeout is never a refusal.
- Without the `<profile>/` prefix FreeSWITCH looks up registered users only and never reaches
  the trunk (recorded): a to_template without `/sip:` is refused at construction.
- The argument is split by switch_separate_string(..., '|', argv, 5): `|` separates fields
  (text after a 4th `|` becomes the content type), a `'...'` pair is a quote and is removed,
  `\\` escapes the next character, leading/trailing blanks are trimmed, and `\\n` `\\r` `\\t` `\\s`
  become LF CR TAB SP. `escape_chat_field` makes any text survive that exactly (and keeps
  line breaks out of the ESL command line).
"""
from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import logging
import re
import time

from ..outbox import SendResult

log = logging.getLogger("pbx_textback.sip.pbx")

AMI_PERMISSION_FIX = ("the AMI user may not send messages: add `message` to its write= in "
                      "manager.conf (then `manager reload`) and load res_pjsip_messaging "
                      "(`module load res_pjsip_messaging.so`; remove any noload for it in "
                      "modules.conf)")
AMI_NO_TECH_FIX = ("Asterisk has no pjsip message technology: load res_pjsip_messaging "
                   "(`module load res_pjsip_messaging.so`; remove any noload for it in modules.conf)")


def _fill(template: str, msg) -> str:
    peer = msg.peer or ""
    return template.format(peer=peer, peer_digits=re.sub(r"\D", "", peer),
                           line=getattr(msg, "line", "") or "",
                           line_digits=re.sub(r"\D", "", getattr(msg, "line", "") or ""))


class AmiMessageTransport:
    """Asterisk `MessageSend` through the service's AMI connection.

    send_action: `AmiSource.send_action` (async, dict -> response dict or list of dicts).
    endpoint_template: the Destination, e.g. "pjsip:mytrunk/sip:{peer}@sip.provider.example".
    from_template: the From, e.g. "sip:{line}@pbx.example.com".
    to_template: optional To header (`{peer}`, `{line}`, `{peer_digits}`, `{line_digits}`).
    """
    name = "ami-message"
    capacity = 4

    relogin_every = 60.0          # at most one re-login for permissions per this many seconds

    def __init__(self, send_action, endpoint_template: str, from_template: str, *,
                 to_template: str = "", timeout: float = 10.0, relogin=None):
        dest = endpoint_template.strip()
        if not dest.lower().startswith("pjsip:"):
            raise ValueError(f"endpoint_template {endpoint_template!r}: must start with pjsip:")
        tail = dest[6:]
        head = tail.split("/", 1)[0]
        if ("{peer" in head and "@" in head and "/" not in tail
                and not head.lower().startswith(("sip:", "sips:", "<", '"'))):
            raise ValueError(
                f"endpoint_template {endpoint_template!r}: Asterisk reads pjsip:X@Y as the endpoint "
                "named X (the @domain is discarded), so the caller's number would be taken for an "
                "endpoint name; write pjsip:<trunk endpoint>/sip:{peer}@<provider host>")
        if "{peer" not in dest:
            raise ValueError(f"endpoint_template {endpoint_template!r}: has no {{peer}}")
        self.send_action = send_action
        self.endpoint_template, self.from_template = dest, from_template
        self.to_template = to_template
        self.timeout = timeout
        # AmiSource.relogin, by default from the source whose send_action we were given
        self._relogin = relogin or getattr(getattr(send_action, "__self__", None), "relogin", None)
        self._relogin_at: float | None = None

    async def start(self):
        pass

    async def stop(self):
        pass

    def action(self, msg) -> dict:
        body = msg.body or ""
        act = {"Action": "MessageSend", "Destination": _fill(self.endpoint_template, msg),
               "From": _fill(self.from_template, msg)}
        if self.to_template:
            act["To"] = _fill(self.to_template, msg)
        if "\r" in body or "\n" in body:
            act["Base64Body"] = base64.b64encode(body.encode("utf-8")).decode("ascii")
        else:
            act["Body"] = body
        return act

    def _relogin_for_permissions(self) -> bool:
        if self._relogin is None:
            return False
        now = time.monotonic()
        if self._relogin_at is not None and now - self._relogin_at < self.relogin_every:
            return False              # refused on the fresh session too: the class is missing
        self._relogin_at = now
        return bool(self._relogin("MessageSend: Permission denied"))

    async def send(self, msg, last_look=None) -> SendResult:
        act = self.action(msg)
        if last_look is not None and not last_look():
            return SendResult("retry")            # the outbox's gate said hold: nothing written
        try:
            res = await _call(self.send_action, act, self.timeout)
        except asyncio.TimeoutError:
            return SendResult("unknown", error=f"no AMI answer to MessageSend within {self.timeout:g} s")
        except ValueError as e:
            return SendResult("failed", error=f"bad MessageSend action: {e}")
        except ConnectionError as e:
            # AmiNotConnected: nothing was written -> retry; AmiConnectionLost: written, fate unknown
            if type(e).__name__ == "AmiConnectionLost":
                return SendResult("unknown", error=f"AMI connection lost before the answer: {e}")
            return SendResult("retry", error=f"AMI not connected: {e}")
        if isinstance(res, list):
            res = res[0] if res else {}
        if not isinstance(res, dict):
            return SendResult("unknown", error=f"unexpected AMI answer {res!r}")
        resp = _one(res, "Response").lower()
        text = _one(res, "Message")
        aid = _one(res, "ActionID")
        if resp == "success":
            return SendResult("sent", aid)
        if resp == "error":
            low = text.lower()
            resend = f"; then `pbx-textback resend {getattr(msg, 'id', '') or 'ID'}`"
            if "permission denied" in low:
                if self._relogin_for_permissions():
                    return SendResult("retry", transport_id=aid, retry_after=2.0,
                                      error=f"AMI MessageSend: {text}: logging in again to pick up "
                                            "the AMI user's current write classes")
                return SendResult("failed", transport_id=aid,
                                  error=f"AMI MessageSend: {text}: {AMI_PERMISSION_FIX}{resend}")
            if "technology not found" in low:
                return SendResult("failed", transport_id=aid,
                                  error=f"AMI MessageSend: {text} {AMI_NO_TECH_FIX}{resend}")
            return SendResult("failed", transport_id=aid,
                              error=f"AMI MessageSend: {text or 'error'} (Destination "
                                    f"{act['Destination']!r})")
        return SendResult("unknown", transport_id=aid, error=f"unexpected AMI answer: {res!r}")


def _one(d: dict, key: str) -> str:
    for k, v in d.items():
        if k.lower() == key.lower():
            if isinstance(v, (list, tuple)):
                v = v[0] if v else ""
            return str(v).strip()
    return ""


async def _call(fn, arg, timeout: float):
    """fn(arg, timeout=...) when fn takes a timeout, else fn(arg) under wait_for."""
    try:
        params = inspect.signature(fn).parameters
        takes_timeout = "timeout" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes_timeout = False
    if takes_timeout:
        return await fn(arg, timeout=timeout)
    return await asyncio.wait_for(fn(arg), timeout)


# --------------------------------------------------------------------------------------------
# FreeSWITCH

_CHAT_ESC = {"\\": "\\\\", "|": "\\|", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_chat_field(text: str) -> str:
    """Text for one field of `chat` so that FreeSWITCH's switch_separate_string gives it back
    unchanged: backslash, `|`, `'`, CR, LF, TAB escaped; leading and trailing blanks as `\\s`."""
    core = text.strip(" ")
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" ")) if core else 0
    if not core:
        lead = len(text)
    return "\\s" * lead + "".join(_CHAT_ESC.get(c, c) for c in core) + "\\s" * trail


def unescape_chat_field(field: str) -> str:
    """What FreeSWITCH 1.10 (cleanup_separated_string) makes of one already-split field: the
    inverse of escape_chat_field, written from its C source for tests."""
    i = 0
    while i < len(field) and field[i] == " ":
        i += 1
    out: list[str] = []
    end = 0
    quoted = False
    n = len(field)
    while i < n:
        ch = field[i]
        if ch == "\\" and i + 1 < n:
            e = field[i + 1]
            m = {"n": "\n", "r": "\r", "t": "\t", "s": " "}.get(e, e)
            if e in ("'", '"', "|", "\\") or m != e:
                out.append(m)
                end = len(out)
                i += 2
                continue
        if ch == "'" and (quoted or "'" in field[i + 1:]):
            quoted = not quoted
            if quoted:
                end = len(out)
        else:
            out.append(ch)
            if ch != " " or quoted:
                end = len(out)
        i += 1
    return "".join(out[:end])


def split_chat_args(arg: str, maxparts: int = 5) -> list[str]:
    """switch_separate_string(arg, '|', argv, 5) as FreeSWITCH 1.10 does it (for tests): a new
    field starts only where there is a character after a `|` (so "a|" is one field), the last
    field takes the rest of the line, then each field goes through cleanup_separated_string."""
    bounds: list[list[int]] = []
    i, n, quoted, in_field = 0, len(arg), False, False
    while i < n and len(bounds) <= maxparts:
        if not in_field:
            if len(bounds) == maxparts:
                break
            bounds.append([i, n])
            in_field = True
            continue
        ch = arg[i]
        if ch == "\\":
            i += 1
        elif ch == "'" and (quoted or "'" in arg[i + 1:]):
            quoted = not quoted
        elif ch == "|" and not quoted and len(bounds) < maxparts:
            bounds[-1][1] = i
            in_field = False
        i += 1
    return [unescape_chat_field(arg[a:b]) for a, b in bounds]


class EslChatTransport:
    """FreeSWITCH `chat` API through the ESL child.

    api: async `api(cmd) -> str` (EslParent.api): the body of FreeSWITCH's api/response.
    to_template: "<profile>/sip:{peer}@<provider host>", e.g. "external/sip:{peer}@sip.example".
    from_template: e.g. "{line}@pbx.example.com".
    """
    name = "esl-chat"
    capacity = 4

    def __init__(self, api, to_template: str, from_template: str, *, proto: str = "sip",
                 content_type: str = "", timeout: float = 40.0):
        if "/sip:" not in to_template and "/sips:" not in to_template:
            raise ValueError(
                f"to_template {to_template!r}: needs the sofia profile and a SIP URI, like "
                "external/sip:{peer}@sip.provider.example; without it FreeSWITCH looks up "
                "registered users only and answers `Error! Message Not Sent`")
        if "{peer" not in to_template:
            raise ValueError(f"to_template {to_template!r}: has no {{peer}}")
        self.api = api
        self.to_template, self.from_template = to_template, from_template
        self.proto, self.content_type = proto, content_type
        self.timeout = timeout
        self._ids = itertools.count(1)

    async def start(self):
        pass

    async def stop(self):
        pass

    def command(self, msg) -> str:
        fields = [self.proto, _fill(self.from_template, msg), _fill(self.to_template, msg),
                  msg.body or ""]
        if self.content_type:
            fields.append(self.content_type)
        return "chat " + "|".join(escape_chat_field(f) for f in fields)

    async def send(self, msg, last_look=None) -> SendResult:
        if not msg.body:
            # "chat sip|F|T|" has 3 fields for FreeSWITCH: it answers "Invalid"
            return SendResult("failed", error="empty text: FreeSWITCH's chat cannot send it")
        cmd = self.command(msg)
        looked: list[bool] = []

        def before_write() -> bool:
            looked.append(last_look() if last_look is not None else True)
            return looked[-1]
        try:
            reply = await _call_esl(self.api, cmd, self.timeout, before_write)
        except Exception as e:                    # no answer to read: what became of it?
            return self._fault(e, written=looked == [True])
        r = (reply or "").strip()
        if r.startswith("Sent") or r.startswith("+OK"):
            return SendResult("sent", f"fs-chat-{getattr(msg, 'id', '') or next(self._ids)}")
        if r.startswith("Error! Message Not Sent"):
            return SendResult("retry", error="FreeSWITCH: Error! Message Not Sent (no 2xx from the "
                                             "far end, or no route: see the MESSAGE event's "
                                             "Delivery-Result-Code and the sofia log)")
        if r.startswith("Invalid") or r.startswith("-ERR"):
            return SendResult("failed", error=f"FreeSWITCH: {r} (command: {cmd[:120]})")
        return SendResult("unknown", error=f"unexpected answer to chat: {r[:200]!r}")

    @staticmethod
    def _fault(e: Exception, written: bool) -> SendResult:
        name = type(e).__name__
        if name == "EslError":            # FreeSWITCH's own -ERR: the one refusal
            text = str(e)
            hint = (" (is mod_dptools loaded and the ESL user allowed api chat?)"
                    if "command not found" in text.lower() else "")
            return SendResult("failed", error=f"FreeSWITCH refused `chat`: {text}{hint}")
        if name == "EslWriteCancelled":   # the last look said hold: the outbox has recorded why
            return SendResult("retry")
        if not written or name == "EslNotConnected":
            return SendResult("retry", error=f"ESL not connected: {e or name}")
        # written, then a timeout, the connection dropping (FreeSWITCH restarting) or worse
        return SendResult("unknown", error=f"no answer to `chat` ({name}: {e}): FreeSWITCH may "
                                           "have sent it")


async def _call_esl(api, cmd: str, timeout: float, before_write):
    """api(cmd, timeout=, before_write=) when it takes them (EslChild.api); else the last look
    goes right before the call, whose first step is the write."""
    try:
        params = inspect.signature(api).parameters
    except (TypeError, ValueError):
        params = {}
    if "before_write" in params:
        return await api(cmd, timeout=timeout, before_write=before_write)
    if not before_write():
        from ..esl.parent import EslWriteCancelled
        raise EslWriteCancelled("held at the last look: not written")
    return await _call(api, cmd, timeout)
