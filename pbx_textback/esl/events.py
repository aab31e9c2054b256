"""What the service asks of FreeSWITCH's event socket; shared by the ESL child, the parent
and `doctor` (no gevent here: doctor and the asyncio side import it)."""
from __future__ import annotations

from ..core.pbx import dialplan_vars as dv

PASSWORD_ENV = "PBX_TEXTBACK_ESL_PASSWORD"
DEFAULT_PASSWORD = "ClueCon"    # FreeSWITCH's shipped event-socket password: known to all

# Everything the service acts on; FreeSWITCH sends nothing else (mod_event_socket filters by
# this list, CUSTOM events by the subclasses after the word CUSTOM):
# - the tracker: channel events, mod_callcenter's and mod_voicemail's CUSTOM events, and
#   our snippet's closed-branch marker (textback::outcome);
# - a caller's text from the carrier: RECV_MESSAGE, fired once per inbound SIP MESSAGE (the
#   MESSAGE events that follow are the chatplan's re-deliveries and our own `chat` sends);
# - *88 / *89 on a desk phone: our snippet's textback::feature;
# - HEARTBEAT, to notice a dead socket and move the event clock;
# - SHUTDOWN (switch_core_destroy fires it before it hangs up every call and unloads the
#   modules): from then on no command is written, so no text goes into a PBX going away.
DEFAULT_EVENTS = ("CHANNEL_CREATE CHANNEL_ORIGINATE CHANNEL_OUTGOING CHANNEL_ANSWER "
                  "CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE "
                  "CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY PLAYBACK_START HEARTBEAT SHUTDOWN "
                  "BACKGROUND_JOB RECV_MESSAGE MESSAGE "
                  f"CUSTOM callcenter::info vm::maintenance {dv.FS_OUTCOME_SUBCLASS} "
                  f"{dv.FS_FEATURE_SUBCLASS}")
