"""[transport.smpp] settings: one SMSC account, checked when built."""
from __future__ import annotations

from dataclasses import dataclass, field

BIND_MODES = ("transceiver", "transmitter+receiver")


@dataclass(frozen=True)
class SmppSettings:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = field(default="", repr=False)    # never in a log line
    system_type: str = ""
    bind_mode: str = "transceiver"           # | "transmitter+receiver"
    source_ton: int = 1                      # 1 international (E.164), 5 alphanumeric
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    enquire_link_interval: float = 30.0
    enquire_link_timeout: float = 10.0
    response_timeout: float = 30.0           # TCP connect, bind_resp, submit_sm_resp
    window: int = 10                         # submit_sm outstanding at most
    tps: float = 10.0                        # submit_sm per second at most (0 = no cap)
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0              # also the wait after a refused bind
    throttle_pause: float = 1.0              # pause after ESME_RTHROTTLED / ESME_RMSGQFUL
    retry_after: float = 60.0                # hint returned with status "retry"
    part_retries: int = 3                    # temporary errors on one part of a long text
    data_coding_default: str = "gsm7"        # what data_coding 0 means to this SMSC: | "latin1"
    gsm7_packed: bool = False
    long_mode: str = "udh"                   # | "payload" (message_payload TLV)
    registered_delivery: bool = True
    retry_unknown: bool = False
    mo_reassembly_timeout: float = 600.0     # a long reply missing parts is delivered as is
    queue_timeout: float = 5.0               # a text not written by then (no bind, window
                                             # full) goes back to the outbox as "retry"
    receipt_timeout_minutes: float = 360.0   # sent, no receipt by then: state "no-receipt"

    def __post_init__(self):
        problems = []
        if self.bind_mode not in BIND_MODES:
            problems.append(f"bind_mode must be one of {BIND_MODES}, not {self.bind_mode!r}")
        if self.data_coding_default not in ("gsm7", "latin1"):
            problems.append("data_coding_default must be 'gsm7' or 'latin1'")
        if self.long_mode not in ("udh", "payload"):
            problems.append("long_mode must be 'udh' or 'payload'")
        if self.window < 1:
            problems.append("window must be >= 1")
        if len(self.password) > 8:      # SMPP 3.4 caps it; smpplib would cut it silently
            problems.append("password: SMPP 3.4 allows at most 8 characters")
        if len(self.system_id) > 15:
            problems.append("system_id: SMPP 3.4 allows at most 15 characters")
        if self.tps < 0:
            problems.append("tps must be >= 0 (0 = no cap)")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            problems.append("need 0 < reconnect_min <= reconnect_max")
        if not 0 < self.queue_timeout <= 300:
            problems.append("queue_timeout must be > 0 and <= 300 seconds")
        if not 0 <= self.receipt_timeout_minutes <= 100_000:
            problems.append("receipt_timeout_minutes must be between 0 (off) and 100000")
        if problems:
            raise ValueError("; ".join(problems))
