"""SMPP transport: smpplib's PDU codec under an asyncio connection of our own (binds, timers,
window, throttling, reconnect, DLRs, callers' replies). See transport.py."""
from .dlr import DeliveryReport, message_id_keys, message_ids_match, normalize_message_id, parse_receipt
from .transport import InboundSms, SmppFault, SmppSettings, SmppTransport, SubmitResult, probe_bind

__all__ = ["DeliveryReport", "InboundSms", "SmppFault", "SmppSettings", "SmppTransport", "SubmitResult",
           "probe_bind",
           "message_id_keys", "message_ids_match", "normalize_message_id", "parse_receipt"]
