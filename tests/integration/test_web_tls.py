"""[web] tls_cert / tls_key: the inbox serves HTTPS itself (a certificate made here by the
openssl command line), its session cookie is Secure, and bad files are named, not fatal."""
import asyncio
import logging
import ssl
import subprocess
import time

import pytest
from aiohttp import ClientSession, CookieJar, TCPConnector

from pbx_textback.config import ConfigError, loads
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.app import Inbox
from pbx_textback.web.passwords import hash_password
from pbx_textback.web.tls import TlsError, not_served

PW = "correct horse battery"


@pytest.fixture
def cert(tmp_path):
    crt, key = tmp_path / "inbox.crt", tmp_path / "inbox.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def cfg_for(tmp_path, crt="", key=""):
    return loads(f"""
[business]
name = "Acme Dental"
[store]
path = "{tmp_path / 's.sqlite3'}"
[web]
listen = "127.0.0.1:0"
tls_cert = "{crt}"
tls_key = "{key}"
""")


def test_the_inbox_serves_https_itself_and_its_cookie_is_secure(tmp_path, cert):
    crt, key = cert
    cfg = cfg_for(tmp_path, crt, key)
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "", time.time())
    box = Inbox(cfg, store, send=lambda *a: 1)

    async def main():
        port = await box.start("127.0.0.1", 0)
        trust = ssl.create_default_context(cafile=str(crt))
        try:
            async with ClientSession(connector=TCPConnector(ssl=trust), cookie_jar=CookieJar(unsafe=True)) as s:
                login = await s.post(f"https://127.0.0.1:{port}/login",
                                     data={"name": "maria", "password": PW}, allow_redirects=False)
                cookie = login.headers.get("Set-Cookie", "")
                inbox = await (await s.get(f"https://127.0.0.1:{port}/")).text()
            async with ClientSession() as plain:          # plain HTTP on the TLS port gets nowhere
                try:
                    await plain.get(f"http://127.0.0.1:{port}/health")
                    plain_ok = True
                except Exception:
                    plain_ok = False
            return box.scheme, login.status, cookie, inbox, plain_ok
        finally:
            await box.stop()
    scheme, status, cookie, inbox, plain_ok = asyncio.run(main())
    store.close()
    assert scheme == "https" and status == 303
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Needs reply" in inbox and not plain_ok


def test_cert_without_key_is_a_config_error(tmp_path, cert):
    with pytest.raises(ConfigError) as e:
        loads(f'[web]\ntls_cert = "{cert[0]}"\n')
    assert "tls_cert and tls_key go together" in str(e.value)


def test_unusable_files_name_the_file_and_the_service_keeps_texting(tmp_path, cert, caplog):
    crt, key = cert
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for c, k, words in ((tmp_path / "missing.crt", key, "tls_cert: " + str(tmp_path / "missing.crt") + " does not exist"),
                        (not_pem, key, "not a certificate and its key in PEM")):
        box = Inbox(cfg_for(tmp_path, c, k), None, send=lambda *a: 1)
        with pytest.raises(TlsError) as e:
            asyncio.run(box.start("127.0.0.1", 0))
        assert words in str(e.value)
        assert not_served(e.value, "127.0.0.1:8080") == str(e.value)

    # the running service: no inbox, one line saying why, and the service goes on
    from pbx_textback.service import Service
    cfg = cfg_for(tmp_path, not_pem, key)
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "", time.time())
    store.close()
    svc = Service(cfg)
    with caplog.at_level(logging.ERROR, logger="pbx_textback"):
        asyncio.run(svc._start_web())
    assert svc.web is None and svc.web_port is None
    assert any("web inbox not served: [web] tls_cert" in r.getMessage() for r in caplog.records)
    svc.store.close()
