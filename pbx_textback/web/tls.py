"""TLS served by the inbox itself ([web] tls_cert / tls_key), for a box with no nginx or
Apache in front. The files are read when the inbox starts: a bad pair stops the inbox with
a line that names the file, never the texting."""
from __future__ import annotations

import os
import ssl


class TlsError(OSError):
    """An unusable certificate or key: the inbox is not served (the service runs on)."""


def context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    for what, path in (("tls_cert", cert), ("tls_key", key)):
        if not os.path.isfile(path):
            raise TlsError(f"[web] {what}: {path} does not exist")
        if not os.access(path, os.R_OK):
            raise TlsError(f"[web] {what}: {path} is not readable by this user (the service's user "
                           "must read it: LoadCredential= or group pbx-textback)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key or None)
    except ssl.SSLError as e:
        raise TlsError(f"[web] tls_cert {cert} and tls_key {key}: not a certificate and its key "
                       f"in PEM ({e.reason or e})") from None
    return ctx


def not_served(e: OSError, listen: str) -> str:
    """The log line's reason when the inbox could not start: its TLS files, or its port."""
    return str(e) if isinstance(e, TlsError) else f"cannot listen on {listen}: {e.strerror or e}"
