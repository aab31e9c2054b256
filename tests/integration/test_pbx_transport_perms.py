"""The `pbx` transport on Asterisk and the AMI user's write classes, against the loopback AMI
server (which, like Asterisk, fixes a session's permissions at login) and the real client."""
import asyncio
import subprocess
import sys
import threading
import time

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.integration.test_ami_gaps import FIX, NO_ANSWER, config as gaps_config

PBX_TRANSPORT = """
[transport]
type = "pbx"
[transport.pbx]
endpoint_template = "pjsip:itsp/sip:{peer}@sip.example"
"""


def config(tmp_path, port):
    return gaps_config(tmp_path, port, cdr=False, extra=PBX_TRANSPORT)


async def run(tmp_path, server, *, reload_after_login: bool):
    port = await server.start()
    svc = Service(config(tmp_path, port))

    async def admin():
        # the admin adds `message` to write= and runs `manager reload` while the service runs
        while server.logins < 1:
            await asyncio.sleep(0.01)
        if reload_after_login:
            server.write_classes = {"call", "originate", "message"}

    async def stop_when_done():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            rows = list(st.Message.select())
            if rows and all(m.state in (st.SENT, st.FAILED) for m in rows):
                break
        svc.stop()
    try:
        await svc.run(extra_tasks=[admin(), stop_when_done()])
    finally:
        await server.stop()
    st.open_store(str(tmp_path / "s.sqlite3"))
    return st.Message.select().where(st.Message.peer == NO_ANSWER).get()


def test_a_write_class_added_while_running_is_picked_up_by_logging_in_again(tmp_path):
    server = AmiReplayServer([FIX / "02-no-answer.ami"], username="t", secret="s",
                             write_classes={"call", "originate"})
    msg = asyncio.run(run(tmp_path, server, reload_after_login=True))
    assert msg.state == st.SENT and msg.transport == "pbx"
    assert server.logins == 2
    sends = [a for a in server.actions if a.get("Action") == "MessageSend"]
    assert len(sends) == 2                      # refused on the old session, sent on the new one


def test_a_write_class_still_missing_fails_the_text_with_the_fix_and_the_resend(tmp_path):
    """Twin: nobody fixed manager.conf. One re-login, then the text fails for good (nothing
    was sent), saying what to add and how to resend it."""
    server = AmiReplayServer([FIX / "02-no-answer.ami"], username="t", secret="s",
                             write_classes={"call", "originate"})
    msg = asyncio.run(run(tmp_path, server, reload_after_login=False))
    assert msg.state == st.FAILED
    assert "add `message` to its write=" in msg.error
    assert f"pbx-textback resend {msg.id}" in msg.error
    assert server.logins == 2


# -- doctor -----------------------------------------------------------------------------------

def doctor(tmp_path, port, transport=PBX_TRANSPORT):
    p = tmp_path / "c.toml"
    p.write_text(f'[pbx.ami]\nport = {port}\nusername = "textback"\nsecret = "right"\n'
                 f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n{transport}')
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", "doctor", "-c", str(p),
                           "--manager-conf", str(tmp_path / "none.conf")],
                          capture_output=True, text=True, timeout=60)


def serve_in_thread(**kw):
    """The server must answer while doctor (a child process) talks to it."""
    box = {}
    ready = threading.Event()

    def main():
        loop = asyncio.new_event_loop()
        server = AmiReplayServer([], username="textback", secret="right", **kw)
        box["port"] = loop.run_until_complete(server.start())
        box["loop"], box["server"] = loop, server
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()
    t = threading.Thread(target=main, daemon=True)
    t.start()
    ready.wait(5)
    return box, t


def stop_thread(box, t):
    box["loop"].call_soon_threadsafe(box["loop"].stop)
    t.join(5)


def test_doctor_fails_a_pbx_transport_the_ami_user_may_not_use(tmp_path):
    box, t = serve_in_thread(write_classes={"call", "originate"})
    try:
        p = doctor(tmp_path, box["port"])
        assert "[FAIL] ami write message: MessageSend: not allowed" in p.stdout, p.stdout
        assert "fix: add 'message' to `write =` of [textback]" in p.stdout
        assert p.returncode == 1
        # the same user with the log transport: only a warning
        p = doctor(tmp_path, box["port"], transport="")
        assert "[warn] ami write message" in p.stdout, p.stdout
    finally:
        stop_thread(box, t)


def test_doctor_passes_the_pbx_transport_when_message_is_allowed(tmp_path):
    box, t = serve_in_thread(write_classes={"call", "originate", "message"})
    try:
        p = doctor(tmp_path, box["port"])
        assert "[ok  ] ami write message: MessageSend: allowed" in p.stdout, p.stdout
    finally:
        stop_thread(box, t)


# -- doctor and cdr_csv (finding 13) ----------------------------------------------------------

CDR = """
[pbx.cdr]
source = "csv"
path = "{master}"
cdr_conf = "{conf}"
"""


def test_doctor_fails_a_cdr_csv_without_the_uniqueid(tmp_path):
    from tests.integration.test_ami_gaps import cdr_rows, write_master_csv
    box, t = serve_in_thread(write_classes={"call", "originate", "message"})
    conf, master = tmp_path / "cdr.conf", tmp_path / "Master.csv"
    try:
        conf.write_text("[csv]\nusegmtime=yes\nloguserfield=yes\n")        # loguniqueid left out
        write_master_csv(master, cdr_rows(["02-no-answer.ami"]), end_at=time.time(), uniqueid=False)
        p = doctor(tmp_path, box["port"], transport=CDR.format(master=master, conf=conf))
        assert "[FAIL] cdr: " in p.stdout and "does not log the uniqueid" in p.stdout, p.stdout
        assert "[csv] loguniqueid=yes" in p.stdout and p.returncode == 1
        conf.write_text("[csv]\nusegmtime=yes\nloguniqueid=yes\nloguserfield=yes\n")
        write_master_csv(master, cdr_rows(["02-no-answer.ami"]), end_at=time.time())
        p = doctor(tmp_path, box["port"], transport=CDR.format(master=master, conf=conf))
        assert "[ok  ] cdr: " in p.stdout and "times in UTC ([csv] usegmtime=yes)" in p.stdout, p.stdout
    finally:
        stop_thread(box, t)
