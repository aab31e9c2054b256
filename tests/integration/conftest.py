"""Real peers for integration tests. The SMSC is node-smpp (tests/peers/smsc), started per test
on free loopback ports; skipped only when `node` is missing (CI installs node)."""
from __future__ import annotations

import pytest

from tests.peers import smsc_peer


@pytest.fixture(scope="session")
def smsc_workdir():
    reason = smsc_peer.node_missing()
    if reason:
        pytest.skip(reason)
    return smsc_peer.install()


@pytest.fixture
def smsc_factory(smsc_workdir):
    """make(start=True, **kw) -> Smsc (host, port, control_url, messages(), mo(), throttle(),
    drop(), unbind(), reset(), stats(), log_events()); every one made is stopped afterwards."""
    made: list[smsc_peer.Smsc] = []

    def make(start: bool = True, **kw) -> smsc_peer.Smsc:
        s = smsc_peer.Smsc(smsc_workdir, **kw)
        made.append(s)
        return s.start() if start else s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def smsc(smsc_factory):
    """A running SMSC on free ports (DLRs after 50 ms)."""
    return smsc_factory(dlr_delay_ms=50)
