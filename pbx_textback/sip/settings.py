"""[sip] settings for SIP MESSAGE straight to a trunk, checked when built."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

MAX_UDP_BYTES = 1300          # RFC 3261 18.1.1 (path MTU unknown): larger goes congestion-controlled


@dataclass(frozen=True)
class SipSettings:
    proxy_host: str                     # the trunk's SIP server (or outbound proxy)
    proxy_port: int = 5060
    transport: str = "udp"              # udp | tcp: how requests are sent
    local_host: str = "127.0.0.1"       # where we listen (and send from, over UDP)
    local_port: int = 5070              # 0: any free port (tests); UDP and TCP get the same one
    from_domain: str = ""               # From: <sip:<line>@from_domain>; default proxy_host
    username: str = ""                  # digest credentials, used only when challenged
    password: str = field(default="", repr=False)
    realm: str = ""                     # answer only challenges for this realm ("" = any)
    timer_t1: float = 0.5               # RFC 3261 T1 (RTT estimate): first retransmit over UDP
    timer_t2: float = 4.0               # retransmit interval cap
    timeout: float = 32.0               # Timer F (64*T1 by the RFC; set both when changing T1)
    request_domain: str = ""            # host in the Request-URI and To; default proxy_host[:port]
    advertised_host: str = ""           # host in Via; default local_host (or the route's address)
    listen: tuple[str, ...] = ("udp", "tcp")   # inbound listeners on local_host:local_port
    allow_from: tuple[str, ...] = ()    # IPs/CIDRs whose requests we take; () = the proxy only
    oversize: str = "tcp"               # tcp | split: what a UDP request over max_udp_bytes does
    max_udp_bytes: int = MAX_UDP_BYTES
    on_timeout: str = "unknown"         # unknown | retry: no final answer by Timer F
    user_agent: str = "pbx-textback"

    def __post_init__(self):
        def bad(key, why):
            raise ValueError(f"sip.{key}: {why}")
        if not self.proxy_host:
            bad("proxy_host", "is required (the trunk's SIP server)")
        if self.transport not in ("udp", "tcp"):
            bad("transport", f"must be udp or tcp, not {self.transport!r}")
        for k in ("proxy_port", "local_port"):
            v = getattr(self, k)
            if not isinstance(v, int) or not (0 <= v <= 65535) or (k == "proxy_port" and v == 0):
                bad(k, f"is not a port number: {v!r}")
        if not set(self.listen) <= {"udp", "tcp"}:
            bad("listen", f"may hold only udp and tcp, not {self.listen!r}")
        if self.oversize not in ("tcp", "split"):
            bad("oversize", f"must be tcp or split, not {self.oversize!r}")
        if self.on_timeout not in ("unknown", "retry"):
            bad("on_timeout", f"must be unknown or retry, not {self.on_timeout!r}")
        if not (0 < self.timer_t1 <= self.timer_t2):
            bad("timer_t1", "must be > 0 and <= timer_t2")
        if self.timeout <= 0:
            bad("timeout", "must be > 0")
        if self.max_udp_bytes < 400:
            bad("max_udp_bytes", "is too small for a SIP request")
        if self.password and not self.username:
            bad("username", "is needed with a password")
        for a in self.allow_from:
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError:
                bad("allow_from", f"{a!r} is not an IP address or network")
