"""Issue 11: `./dev test` as root installs the test peers' servers (Kamailio wants port 5060,
MariaDB): it must leave none of them enabled at boot. Runs after ./dev's bootstrap, as in CI."""
import shutil
import subprocess
from pathlib import Path

import pytest

NEEDS = Path(__file__).resolve().parents[1] / "peers" / "needs-apt.txt"


def peer_units() -> dict[str, list[str]]:
    out = {}
    for line in NEEDS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        for pkg in line.split()[1:]:
            files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True).stdout.split()
            out[pkg] = sorted({Path(f).name for f in files if "/systemd/system/" in f
                               and f.endswith(".service") and "@" not in Path(f).name})
    return out


@pytest.mark.skipif(not (shutil.which("dpkg") and shutil.which("systemctl")), reason="Debian with systemd only")
def test_no_test_peer_is_enabled_at_boot():
    units = peer_units()
    enabled = [u for us in units.values() for u in us
               if subprocess.run(["systemctl", "is-enabled", u], capture_output=True, text=True).stdout.strip()
               == "enabled"]
    assert not enabled, f"./dev left these enabled at boot: {enabled}"


def test_the_readme_says_dev_is_for_a_development_box_never_the_pbx():
    readme = (NEEDS.parents[2] / "README.md").read_text()
    assert "for a development machine, never the PBX" in readme
