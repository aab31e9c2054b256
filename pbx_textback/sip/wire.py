"""SIP MESSAGE on the wire, sans-IO: bytes in, messages and events out; messages out as bytes.
Nothing here touches a socket, the clock or the event loop, and nothing raises on bad input
(the transport in message.py does the I/O).

- `parse_message(bytes)` -> SipMessage | None: request or response, compact header forms
  (f: t: i: v: l: c: ...), folded lines, comma-joined Via; a body shorter than its
  Content-Length is flagged (`msg.bad`) so a request still gets its 400.
- `StreamFramer`: SIP over TCP (Content-Length framing, RFC 5626 CRLF keep-alives): feed bytes,
  get ("message", SipMessage) | ("ping", None) | ("error", reason) events.
- `build_request` / `build_response`: the bytes of a request, and of an answer to a request
  (RFC 3261 8.2.6, received/rport stamped).
- `digest_authorization(...)`: RFC 2617/7616 digest (MD5, MD5-sess, SHA-256[-sess]; qop=auth,
  auth-int or none); `choose_challenge` picks the challenge we can answer.
- `split_body(text, max_bytes)`: UTF-8 pieces that each fit, cut at spaces where it can, never
  inside a character or a combining/ZWJ sequence.
- `message_text(req)`: a MESSAGE's text (text/plain or message/cpim) in its declared charset.
"""
from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field

log = logging.getLogger("pbx_textback.sip")

MAX_MESSAGE_BYTES = 65535     # we never accept a bigger message on any transport

# RFC 3261 7.3.3 and the IANA registry: compact form -> long name (lower case)
COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
    "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires",
    "y": "identity",
}
_CANON = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
          "max-forwards": "Max-Forwards"}


def canon_name(lower: str) -> str:
    return _CANON.get(lower) or "-".join(p.capitalize() for p in lower.split("-"))


# --------------------------------------------------------------------------------------------
# parsing (sans-IO, never raises)


@dataclass
class SipMessage:
    is_request: bool
    method: str = ""           # request method (for a response: the CSeq method)
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)   # (long lower name, value)
    body: bytes = b""
    bad: str = ""              # why this request cannot be processed (answered 400)

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def vias(self) -> list[str]:
        out: list[str] = []
        for v in self.get_all("via"):
            out.extend(p for p in split_commas(v) if p)
        return out

    @property
    def call_id(self) -> str:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.get("cseq"))


_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


def parse_message(data: bytes) -> SipMessage | None:
    """One SIP message from a datagram (or a whole framed message from a stream). None when
    the bytes are not SIP at all. Never raises."""
    try:
        return _parse(data)
    except Exception:                       # a parser bug must not take the listener down
        log.debug("unparseable SIP message", exc_info=True)
        return None


def _parse(data: bytes) -> SipMessage | None:
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_MESSAGE_BYTES:
        return None
    data = bytes(data).lstrip(b"\r\n")
    if not data:
        return None
    i = data.find(b"\r\n\r\n")
    if i >= 0:
        head, body = data[:i], data[i + 4:]
    else:
        j = data.find(b"\n\n")
        if j >= 0:
            head, body = data[:j], data[j + 2:]
        else:
            head, body = data, b""
    text = head.decode("utf-8", "replace")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    parts = start.split(" ", 2)
    if len(parts) < 3 and not (len(parts) == 2 and parts[0].upper() == "SIP/2.0"):
        return None
    if parts[0].upper() == "SIP/2.0":
        code = parts[1]
        if not (len(code) == 3 and code.isdigit()) or not ("1" <= code[0] <= "6"):
            return None
        msg = SipMessage(False, status=int(code), reason=parts[2].strip() if len(parts) > 2 else "")
    else:
        method, uri, version = parts[0], parts[1], parts[2].strip()
        if version.upper() != "SIP/2.0" or not _TOKEN.match(method) or not uri:
            return None
        msg = SipMessage(True, method=method.upper(), uri=uri)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:             # folded continuation (RFC 3261 7.3.1)
            k, v = headers[-1]
            headers[-1] = (k, (v + " " + line.strip()).strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or not _TOKEN.match(name):
            continue                                          # tolerate junk lines
        headers.append((COMPACT.get(name, name), value.strip()))
    msg.headers = headers
    cl = msg.get("content-length")
    if cl:
        if _isnum(cl) and len(cl) < 8:
            n = int(cl)
            if n <= len(body):
                body = body[:n]
            else:
                msg.bad = f"Content-Length {n} but only {len(body)} body bytes"
        else:
            msg.bad = "bad Content-Length"
    msg.body = body
    if not msg.is_request:
        msg.method = parse_cseq(msg.get("cseq"))[1]
    return msg


def _isnum(s: str) -> bool:
    return s.isascii() and s.isdigit()


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and <...>."""
    out, cur, q, angle, esc = [], [], False, False, False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if q and ch == "\\":
            cur.append(ch)
            esc = True
            continue
        if ch == '"':
            q = not q
        elif ch == "<" and not q:
            angle = True
        elif ch == ">" and not q:
            angle = False
        elif ch == "," and not q and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) == 2 and _isnum(parts[0]) and len(parts[0]) < 11:
        return int(parts[0]), parts[1].upper()
    return -1, ""


def _params(s: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in s.split(";"):
        k, _, v = p.partition("=")
        k = k.strip().lower()
        if k:
            out[k] = v.strip().strip('"')
    return out


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def parse_via(value: str) -> Via | None:
    try:
        proto, _, rest = value.strip().partition(" ")
        bits = proto.split("/")
        if len(bits) != 3 or bits[0].upper() != "SIP":
            return None
        sent_by, _, params = rest.strip().partition(";")
        host, port = _split_hostport(sent_by.strip())
        if not host:
            return None
        return Via(bits[2].upper(), host, port, _params(params))
    except Exception:
        return None


def _split_hostport(s: str) -> tuple[str, int | None]:
    s = s.strip()
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return "", None
        host, rest = s[1:end], s[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = s.partition(":")
    if port:
        if not _isnum(port) or len(port) > 5 or not (0 < int(port) < 65536):
            return host, None
        return host, int(port)
    return host, None


@dataclass(frozen=True)
class Uri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: dict


def parse_uri(s: str) -> Uri | None:
    """sip:/sips:/tel: URIs; the user part percent-decoded. None when not one of those."""
    try:
        s = s.strip()
        scheme, sep, rest = s.partition(":")
        scheme = scheme.lower()
        if not sep:
            return None
        if scheme == "tel":
            num, _, params = rest.partition(";")
            return Uri("tel", urllib.parse.unquote(num), "", None, _params(params))
        if scheme not in ("sip", "sips"):
            return None
        rest = rest.split("?", 1)[0]
        main, _, params = rest.partition(";")
        userinfo, at, hostport = main.rpartition("@")
        user = urllib.parse.unquote(userinfo.partition(":")[0]) if at else ""
        host, port = _split_hostport(hostport)
        return Uri(scheme, user, host, port, _params(params))
    except Exception:
        return None


def parse_nameaddr(value: str) -> tuple[str, str, dict]:
    """(display name, uri, header params) of a From/To/Contact value."""
    v = value.strip()
    q, lt = False, -1
    for idx, ch in enumerate(v):
        if ch == '"':
            q = not q
        elif ch == "<" and not q:
            lt = idx
            break
    if lt >= 0:
        gt = v.find(">", lt)
        if gt < 0:
            return v[:lt].strip().strip('"'), v[lt + 1:].strip(), {}
        return v[:lt].strip().strip('"'), v[lt + 1:gt].strip(), _params(v[gt + 1:])
    uri, _, params = v.partition(";")
    return "", uri.strip(), _params(params)


def uri_user(header_value: str) -> str:
    u = parse_uri(parse_nameaddr(header_value)[1])
    return u.user if u else ""


def parse_retry_after(value: str) -> float:
    m = re.match(r"\s*(\d{1,9})", value or "")
    return float(m.group(1)) if m else 0.0


class StreamFramer:
    """SIP over a byte stream (TCP): feed bytes, get ("message", SipMessage) | ("ping", None)
    | ("error", reason) events. After an error the stream cannot be resynchronized: close it."""

    def __init__(self, max_size: int = MAX_MESSAGE_BYTES):
        self.buf = bytearray()
        self.max_size = max_size
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        if self.broken:
            return out
        self.buf += data
        while self.buf:
            if self.buf.startswith(b"\r\n\r\n"):
                del self.buf[:4]
                out.append(("ping", None))
                continue
            if self.buf.startswith(b"\r\n"):
                if len(self.buf) < 4 and b"\r\n\r\n".startswith(bytes(self.buf)):
                    break                            # maybe the start of a keep-alive
                del self.buf[:2]
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > self.max_size:
                    return self._error(out, "headers too long")
                break
            head = bytes(self.buf[:end])
            cl = None
            for line in head.split(b"\r\n")[1:]:
                name, sep, value = line.partition(b":")
                if sep and name.strip().lower() in (b"content-length", b"l"):
                    value = value.strip()
                    if not value.isdigit() or len(value) > 7:
                        return self._error(out, "bad Content-Length")
                    cl = int(value)
            if cl is None:
                return self._error(out, "no Content-Length on a stream")
            total = end + 4 + cl
            if total > self.max_size:
                return self._error(out, "message too long")
            if len(self.buf) < total:
                break
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            msg = parse_message(raw)
            if msg is None:
                return self._error(out, "not a SIP message")
            out.append(("message", msg))
        return out

    def _error(self, out, why):
        self.broken = True
        self.buf.clear()
        out.append(("error", why))
        return out


# --------------------------------------------------------------------------------------------
# building


def new_branch() -> str:
    return "z9hG4bK" + os.urandom(10).hex()


def new_tag() -> str:
    return os.urandom(6).hex()


def build_request(method: str, ruri: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {ruri} SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def build_response(req: SipMessage, code: int, reason: str, *, to_tag: str = "",
                   extra: list[tuple[str, str]] = (), received: str = "", rport: int | None = None,
                   body: bytes = b"") -> bytes:
    """A response to `req` (RFC 3261 8.2.6): its Vias (top one with received/rport filled),
    From, To (+ our tag), Call-ID, CSeq."""
    lines = [f"SIP/2.0 {code} {reason}"]
    vias = req.vias()
    for n, v in enumerate(vias):
        if n == 0:
            v = _stamp_via(v, received, rport)
        lines.append(f"Via: {v}")
    lines.append(f"From: {req.get('from')}")
    to = req.get("to")
    if to_tag and "tag" not in parse_nameaddr(to)[2]:
        to = f"{to};tag={to_tag}"
    lines.append(f"To: {to}")
    lines.append(f"Call-ID: {req.call_id}")
    lines.append(f"CSeq: {req.get('cseq')}")
    lines += [f"{k}: {v}" for k, v in extra]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _stamp_via(via: str, received: str, rport: int | None) -> str:
    """RFC 3261 18.2.1 received=, RFC 3581 rport=."""
    v = parse_via(via)
    if v is None:
        return via
    parts = via.split(";")
    out = [parts[0]]
    for p in parts[1:]:
        k = p.partition("=")[0].strip().lower()
        if k == "rport" and rport is not None:
            out.append(f"rport={rport}")
        elif k == "received":
            continue
        else:
            out.append(p)
    if received and (received != v.host or "rport" in v.params):
        out.append(f"received={received}")
    return ";".join(out)


# --------------------------------------------------------------------------------------------
# digest authentication (RFC 2617, RFC 7616, RFC 8760)


_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(value: str) -> dict[str, str] | None:
    """`Digest realm="x", nonce="y", qop="auth", ...` -> {"realm": "x", ...} (lower-case keys)."""
    v = value.strip()
    scheme, _, rest = v.partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        j = i
        while j < n and rest[j] not in "=, \t":
            j += 1
        key = rest[i:j].lower()
        while j < n and rest[j] in " \t":
            j += 1
        if j >= n or rest[j] != "=":
            i = j + 1
            continue
        j += 1
        while j < n and rest[j] in " \t":
            j += 1
        if j < n and rest[j] == '"':
            j += 1
            val = []
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n:
                    j += 1
                val.append(rest[j])
                j += 1
            j += 1
            value_s = "".join(val)
        else:
            k = j
            while j < n and rest[j] not in ", \t":
                j += 1
            value_s = rest[k:j]
        if key:
            out[key] = value_s
        i = j
    return out if "nonce" in out else None


def choose_challenge(values: list[str], realm: str = "") -> dict[str, str] | None:
    """The first digest challenge we can answer (RFC 8760: servers list them best first)."""
    for v in values:
        ch = parse_challenge(v)
        if ch is None:
            continue
        alg = ch.get("algorithm", "MD5").upper()
        if alg.removesuffix("-SESS") not in _HASHES:
            continue
        if realm and ch.get("realm", "") != realm:
            continue
        return ch
    return None


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def digest_authorization(challenge: dict[str, str], method: str, uri: str, username: str,
                         password: str, *, body: bytes = b"", cnonce: str | None = None,
                         nc: int = 1) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge`."""
    alg = challenge.get("algorithm", "MD5")
    base = alg.upper().removesuffix("-SESS")
    sess = alg.upper().endswith("-SESS")
    H = lambda s: _HASHES[base](s.encode("utf-8")).hexdigest()      # noqa: E731
    realm, nonce = challenge.get("realm", ""), challenge["nonce"]
    qops = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else ("auth-int" if "auth-int" in qops else "")
    cnonce = cnonce or os.urandom(8).hex()
    ha1 = H(f"{username}:{realm}:{password}")
    if sess:
        ha1 = H(f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = H(f"{method}:{uri}:{_HASHES[base](body).hexdigest()}")
    else:
        ha2 = H(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    if qop:
        resp = H(f"{ha1}:{nonce}:{ncs}:{cnonce}:{qop}:{ha2}")
    else:
        resp = H(f"{ha1}:{nonce}:{ha2}")
    parts = [f'username="{_q(username)}"', f'realm="{_q(realm)}"', f'nonce="{_q(nonce)}"',
             f'uri="{_q(uri)}"', f'response="{resp}"', f"algorithm={alg}"]
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
    if "opaque" in challenge:
        parts.append(f'opaque="{_q(challenge["opaque"])}"')
    return "Digest " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# long bodies


def split_body(text: str, max_bytes: int) -> list[str]:
    """Pieces of `text` whose UTF-8 forms are each <= max_bytes and whose concatenation is
    `text`. Cuts after a space when there is one in the second half of a piece; never inside
    a combining sequence, a ZWJ emoji sequence or before a variation selector."""
    if max_bytes < 8:
        raise ValueError("max_bytes too small")
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        size, j = 0, i
        while j < n:
            b = len(text[j].encode("utf-8", "surrogatepass"))
            if size + b > max_bytes:
                break
            size += b
            j += 1
        if j < n:
            cut = j
            while cut > i + 1 and _glued(text, cut):
                cut -= 1
            if cut == i + 1 and _glued(text, cut):
                cut = j                                   # one unsplittable run: cut anyway
            space = text.rfind(" ", i, cut)
            nl = text.rfind("\n", i, cut)
            brk = max(space, nl)
            if brk >= i + (cut - i) // 2:
                cut = brk + 1
            j = cut
        out.append(text[i:j])
        i = j
    return out


def _glued(text: str, k: int) -> bool:
    """True when a cut between text[k-1] and text[k] would split a visible character."""
    nxt, prev = text[k], text[k - 1]
    return (unicodedata.combining(nxt) != 0 or nxt in "\u200d\ufe0e\ufe0f" or prev == "\u200d"
            or 0x1F3FB <= ord(nxt) <= 0x1F3FF or 0xE0020 <= ord(nxt) <= 0xE007F
            or (0x1F1E6 <= ord(prev) <= 0x1F1FF and 0x1F1E6 <= ord(nxt) <= 0x1F1FF
                and _regional_run(text, k) % 2 == 1))


def _regional_run(text: str, k: int) -> int:
    c = 0
    while k - 1 - c >= 0 and 0x1F1E6 <= ord(text[k - 1 - c]) <= 0x1F1FF:
        c += 1
    return c


def message_text(req: SipMessage) -> tuple[str, str]:
    """(text, "") or ("", why not readable)."""
    ctype = req.get("content-type", "text/plain")
    mime, _, params = ctype.partition(";")
    mime = mime.strip().lower()
    charset = _params(params).get("charset", "utf-8") or "utf-8"
    body = req.body
    if mime == "message/cpim":                         # RFC 3862: headers, blank line, MIME part
        _, sep, inner = body.partition(b"\r\n\r\n")
        if not sep:
            return "", "bad message/cpim"
        ihead, sep, ibody = inner.partition(b"\r\n\r\n")
        if not sep:
            return "", "bad message/cpim"
        mime = "text/plain"
        for line in ihead.split(b"\r\n"):
            k, _, v = line.decode("utf-8", "replace").partition(":")
            if k.strip().lower() == "content-type":
                m, _, p = v.partition(";")
                mime = m.strip().lower()
                charset = _params(p).get("charset", "utf-8") or "utf-8"
        body = ibody
    if mime not in ("text/plain", ""):
        return "", f"content type {mime}"
    return decode_body(body, charset), ""


# codecs Python has that are not character sets of a text body: idna cannot decode with
# replacement (it raised out of the handler: the MESSAGE went unanswered), the escape codecs
# read backslashes, punycode is slow on long input
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


def decode_body(body: bytes, charset: str) -> str:
    """The body as text in its declared charset; UTF-8 (with U+FFFD for bad bytes) when the
    charset is unknown, not a character set, or unusable. Never raises: a caller's STOP in an
    odd charset is still a STOP."""
    try:
        info = codecs.lookup(charset)
        if info._is_text_encoding and info.name not in _NOT_CHARSETS:
            return body.decode(info.name, "replace")
    except (LookupError, ValueError, UnicodeError, TypeError):    # NUL in the name, ...
        pass
    return body.decode("utf-8", "replace")
