"""/metrics scraped over HTTP from the running service (recorded AMI calls replayed by a
loopback AMI server, texts through the real SMSC peer) and parsed with prometheus_client's
own parser. The service runs in a thread with its own loop."""
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbx_textback.config import ConfigError, loads
from tests.service_thread import ServiceThread
from tests.service_toml import smpp_service_toml

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
CALLERS = ("+17375550188", "+15125550177")      # 02-no-answer.ami, 03-abandoned.ami


def running(cfg_text, traces) -> ServiceThread:
    """The service, ready once its observers (/metrics) have started."""
    return ServiceThread(loads(cfg_text), traces, is_ready=lambda svc: getattr(svc, "observers", None) is not None)


def cfg_text(tmp_path, smsc, metrics: str) -> str:
    return smpp_service_toml(tmp_path / "s.sqlite3", smsc.port, phone="", business='timezone = "America/Chicago"',
                             extra=LINES + metrics)


LINES = """
[[line]]
number = "+15125550110"
name = "Google Ads"
[[line]]
number = "+15125550140"
name = "Main"
"""


def scrape(port: int) -> tuple[str, dict]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return body, samples


def wait_for(fn, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("not within the time")


def test_prometheus_scrapes_the_running_service(tmp_path, smsc):
    run = running(cfg_text(tmp_path, smsc, '[metrics]\nenabled = true\nlisten = "127.0.0.1:0"'),
                  [FIX / "02-no-answer.ami", FIX / "03-abandoned.ami"])
    run.thread.start()
    try:
        assert run.ready.wait(20)
        port = run.svc.observers.metrics_port
        assert port

        def settled():
            body, s = scrape(port)
            delivered = s.get(("pbx_textback_texts_total", (("kind", "missed-call"), ("result", "delivered"))), 0)
            return (body, s) if delivered == 2 else None
        body, s = wait_for(settled)
        m = lambda name, **labels: s.get((name, tuple(sorted(labels.items()))))   # noqa: E731
        assert m("pbx_textback_missed_calls_total", line="+15125550110", reason="no-answer") == 1
        assert m("pbx_textback_missed_calls_total", line="+15125550140", reason="abandoned") == 1
        assert m("pbx_textback_inbound_calls_total", line="+15125550110") == 1
        assert m("pbx_textback_pbx_up") == 1 and m("pbx_textback_smsc_bound") == 1
        assert m("pbx_textback_outbox_depth") == 0 and m("pbx_textback_outbox_oldest_due_seconds") == 0
        assert m("pbx_textback_first_human_response_seconds_count") == 0
        # a caller's STOP through the SMSC: a reply and an opt-out, under the line's label
        smsc.mo(CALLERS[0], "+15125550110", "STOP")
        s = wait_for(lambda: (lambda b_s: b_s[1] if b_s[1].get(
            ("pbx_textback_opt_outs_total", (("line", "+15125550110"),))) == 1 else None)(scrape(port)))
        assert s[("pbx_textback_replies_total", (("line", "+15125550110"),))] == 1
        body, _ = scrape(port)
        for caller in CALLERS:            # label values are lines, reasons, results: never a caller
            assert caller not in body and caller[1:] not in body
        assert "# TYPE pbx_textback_first_human_response_seconds histogram" in body
        assert "# TYPE pbx_textback_webhook_deliveries_total counter" in body   # the webhooks' queue is there
        # the SMSC goes away: the bind is down on the next scrape
        smsc.close()
        wait_for(lambda: scrape(port)[1].get(("pbx_textback_smsc_bound", ())) == 0)
    finally:
        run.stop()


def test_metrics_are_off_by_default(tmp_path, smsc):
    """The shipped default: no [metrics] table, nothing listens."""
    run = running(cfg_text(tmp_path, smsc, ""), [FIX / "02-no-answer.ami"])
    run.thread.start()
    try:
        assert run.ready.wait(20)
        assert run.svc.observers.metrics is None and run.svc.observers.metrics_port is None
        assert loads(cfg_text(tmp_path, smsc, "")).metrics.enabled is False
    finally:
        run.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "192.168.1.5:9464", "[::]:9464"])
def test_metrics_refuse_an_address_beyond_loopback(listen):
    with pytest.raises(ConfigError, match="loopback address only"):
        loads(f'[metrics]\nenabled = true\nlisten = "{listen}"\n')
