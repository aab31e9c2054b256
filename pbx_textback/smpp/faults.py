"""A failed connect or bind, named for the admin (kind, what happened, what to look at)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import pdu as P

if TYPE_CHECKING:
    from .settings import SmppSettings


class BindRefused(Exception):
    def __init__(self, status: int):
        super().__init__(P.status_name(status))
        self.status = status


class SmppFault(Exception):
    """Why a connect + bind failed, named for the admin: `kind` is one of refused, timeout,
    unreachable, closed, bind-timeout, bind-refused, protocol; `fix` says what to look at."""

    def __init__(self, kind: str, text: str, fix: str, status: int | None = None):
        super().__init__(text)
        self.kind, self.fix, self.status = kind, fix, status


_BIND_STATUS_FIX = {
    P.ESME_RINVPASWD: "the password is wrong: check password in [transport.smpp] with the provider",
    P.ESME_RINVSYSID: "the gateway does not know this system_id: check system_id in "
                      "[transport.smpp] with the provider",
    P.ESME_RBINDFAIL: "the gateway gives no reason (ESME_RBINDFAIL): ask the provider whether the "
                      "account's bind limit is reached (another program bound with it), whether "
                      "this box's IP is allowed for the account and whether system_type is right",
    0x05: "the account is already bound (ESME_RALYBND): another program holds its binds",
}


def name_fault(exc: BaseException, s: "SmppSettings", stage: str = "connect") -> SmppFault:
    """A connect/bind failure as the admin should read it (stage: connect | bind)."""
    where = f"{s.host}:{s.port}"
    if isinstance(exc, SmppFault):
        return exc
    if isinstance(exc, BindRefused):
        fix = _BIND_STATUS_FIX.get(exc.status, "ask the provider what this status means for "
                                               "your account")
        return SmppFault("bind-refused", f"the gateway refused the bind with {exc} "
                         f"(system_id={s.system_id!r})", fix, exc.status)
    if isinstance(exc, ConnectionRefusedError):
        return SmppFault("refused", f"connection refused by {where}",
                         f"nothing listens on {where} (the gateway is down, or the wrong port), "
                         "or a firewall rejects the connection")
    if isinstance(exc, asyncio.TimeoutError):
        if stage == "bind":
            return SmppFault("bind-timeout", f"connected to {where} but no answer to the bind within "
                             f"{s.response_timeout:g}s",
                             "is this an SMPP port (not TLS, not HTTP)? ask the provider")
        return SmppFault("timeout", f"no answer from {where} within {s.response_timeout:g}s",
                         f"a firewall drops the packets, the host is wrong, or this box's public IP "
                         f"is not on the provider's allow-list (`nc -vz {s.host} {s.port}`)")
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError, LinkClosed)):
        return SmppFault("closed", f"{where} closed the connection before answering the bind",
                         "often this box's IP is not allowed, or the account's bind limit is "
                         "reached: ask the provider")
    if isinstance(exc, P.PduError):
        return SmppFault("protocol", f"{where} does not speak SMPP: {exc}",
                         "check host and port with the provider")
    if isinstance(exc, OSError):
        return SmppFault("unreachable", f"cannot reach {where}: {exc.strerror or exc}",
                         "check the host name, DNS and the route from this box")
    return SmppFault("protocol", f"{where}: {exc!r}", "see the log")


class LinkClosed(Exception):
    """The link went away while a request waited for its answer."""
