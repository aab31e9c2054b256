"""The TOML of a service on a loopback PBX and the test SMSC peer (account acme / pw), which
many integration tests start. Quiet hours are off unless given: these tests measure sending,
and tests/integration/test_shipped_defaults.py keeps the shipped quiet hours on a real clock."""
from __future__ import annotations


def smpp_service_toml(store, smsc_port: int, *, ami_port: int = 1, phone: str = "+15125550100",
                      quiet_hours: str = '""', compliance: str = "", smpp: str = "",
                      extra: str = "", business: str = "") -> str:
    """`business`, `compliance` and `smpp` are lines added to those sections; `extra` is
    appended whole."""
    business_phone = f'phone = "{phone}"\n' if phone else ""
    return f"""
[business]
name = "Acme Dental"
{business_phone}{business}
[pbx.ami]
port = {ami_port}
username = "t"
secret = "s"
[store]
path = "{store}"
[compliance]
quiet_hours = {quiet_hours}
{compliance}
[transport]
type = "smpp"
[transport.smpp]
host = "127.0.0.1"
port = {smsc_port}
system_id = "acme"
password = "pw"
{smpp}
{extra}
"""
