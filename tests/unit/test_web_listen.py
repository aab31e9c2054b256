"""[web] listen = "HOST:PORT": parsed or refused with a clear word, never a crash."""
from hypothesis import given, strategies as hs

from pbx_textback.config import ConfigError, loads, web_listen


@given(hs.text(max_size=40))
def test_any_text_is_parsed_or_refused(s):
    got = web_listen(s)
    assert got is None or (got[0] and 0 <= got[1] < 65536)


@given(hs.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "pbx.example"]), hs.integers(0, 65535))
def test_host_and_port_round_trip(host, port):
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert web_listen(shown) == (host, port)


def test_a_bad_listen_is_a_config_error_that_says_what_to_write():
    for bad in ("8080", "127.0.0.1:", "127.0.0.1:70000", "localhost:http"):
        try:
            loads(f'[web]\nlisten = "{bad}"\n')
        except ConfigError as e:
            assert "'web.listen' (line 2)" in str(e) and "HOST:PORT" in str(e)
        else:
            raise AssertionError(bad)
    assert loads("").web.listen == "127.0.0.1:8080" and loads("").web.enabled is True
