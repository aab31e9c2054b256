"""`pbx-textback hooks …` and `token …` as an admin types them, on a real store."""
import time

from pbx_textback.cli import main
from pbx_textback.hooks.events import event
from pbx_textback.hooks.sign import new_secret
from pbx_textback.store import api as sa
from pbx_textback.store import db as st
from pbx_textback.store import hooks as sh


def setup(tmp_path):
    (tmp_path / "sec").write_text(new_secret())
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""[store]\npath = "{tmp_path / 's.sqlite3'}"
[[hooks.endpoint]]\nname = "crm"\nurl = "https://relay.example/h"\nsecret_file = "{tmp_path / 'sec'}"
""")
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    now = time.time()
    sh.enqueue(store, [event("call_1_missed", "call.missed", now, {}), event("msg_2_sent", "message.sent", now, {})],
               {"crm": ("call.missed", "message.sent")}, now)
    d = sh.deliveries("crm", state="pending")[-1]
    sh.record_attempt(store, d["id"], now=now, status=500, error="HTTP 500", ms=40, state=sh.FAILED)
    sh.disable_endpoint(store, "crm", "https://relay.example/h answered 410 Gone to msg_2_sent", now)
    store.close()
    return str(cfg), d["id"]


def test_list_deliveries_show_resend_enable(tmp_path, capsys):
    cfg, failed = setup(tmp_path)
    assert main(["hooks", "list", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert "crm\thttps://relay.example/h\tDISABLED" in out and "410 Gone" in out and "failed=1" in out
    assert main(["hooks", "deliveries", "--state", "failed", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert "call_1_missed" in out and "failed after 1 attempt(s) 500 HTTP 500" in out and "msg_2_sent" not in out
    assert main(["hooks", "show", str(failed), "-c", cfg]) == 0
    assert "500  40 ms  HTTP 500" in capsys.readouterr().out
    assert main(["hooks", "resend", str(failed), "-c", cfg]) == 0
    assert "same webhook-id" in capsys.readouterr().out
    assert main(["hooks", "resend", "999", "-c", cfg]) == 2
    assert "no webhook delivery #999" in capsys.readouterr().err
    assert main(["hooks", "enable", "crm", "-c", cfg]) == 0
    assert main(["hooks", "list", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert "\ton\t" in out and "pending=2" in out


def test_hooks_secret_is_a_whsec_the_config_accepts(tmp_path, capsys):
    assert main(["hooks", "secret"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("whsec_")
    from standardwebhooks.webhooks import Webhook
    Webhook(secret)


def test_token_add_shows_it_once_list_and_revoke(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    assert main(["token", "add", "crm", "--scope", "write", "-c", str(cfg)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("pbxtb_") and len(token) > 40
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    row = sa.ApiToken.get(sa.ApiToken.name == "crm")
    assert token not in (row.token_hash, row.name) and sa.check(store, token, time.time()).scope == "write"
    store.close()
    assert main(["token", "add", "crm", "-c", str(cfg)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["token", "list", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "crm\twrite\tactive" in out and token not in out
    assert main(["token", "revoke", "crm", "-c", str(cfg)]) == 0
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    assert sa.check(store, token, time.time()) is None
    store.close()
