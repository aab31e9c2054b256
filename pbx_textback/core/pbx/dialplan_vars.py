"""Every name shared between our dialplan snippets (dialplan_snippets/) and the service.

Like wazo-agid's one module of channel variables: the snippets and the Python code both use
exactly these names, and tests/unit/test_dialplan_snippets.py checks that every `TEXTBACK_*`
variable, UserEvent, header, context, AGI script and FreeSWITCH event name in the snippets is
declared here, and that everything declared here is used by a snippet. Pure data, no imports.
"""
from __future__ import annotations

# ---- Asterisk: the explicit outcome marker (hangup handler -> AMI UserEvent) -----------------
OUTCOME_EVENT = "TextbackOutcome"          # UserEvent name, emitted by [textback-hangup]
H_DIAL_STATUS = "DialStatus"               # header: ${DIALSTATUS} when the caller hung up
H_AFTER_HOURS = "AfterHours"               # header: 1 when the after-hours branch was taken, else 0
H_VOICEMAIL_LEFT = "VoicemailLeft"         # header: 1 when VoiceMail() left a message, else 0
OUTCOME_HEADERS = (H_DIAL_STATUS, H_AFTER_HOURS, H_VOICEMAIL_LEFT)

# ---- Asterisk: our channel variables ----------------------------------------------------------
VAR_AFTER_HOURS = "TEXTBACK_AFTERHOURS"    # 1 = the admin's closed branch ran (set inherited, __)
VAR_RESULT = "TEXTBACK_RESULT"             # set by our AGI: calling | queued | none | failed
VAR_REASON = "TEXTBACK_REASON"             # set by our AGI: why (nobody-waiting, opted-out, ...)
VAR_NUMBER = "TEXTBACK_NUMBER"             # set by our AGI: the caller's digits, for SayDigits()
VAR_CALLBACK = "TEXTBACK_CALLBACK"         # on a *88 Originate: the call_id being called back
TEXTBACK_VARS = (VAR_AFTER_HOURS, VAR_RESULT, VAR_REASON, VAR_NUMBER, VAR_CALLBACK)
# set by the service's *88 Originate on the desk phone's channel; no snippet needs it, the
# admin's outbound route may read it (e.g. Set(CDR(userfield)=callback:${TEXTBACK_CALLBACK}))
ORIGINATE_VARS = (VAR_CALLBACK,)

# Asterisk's own variables the snippets read (not ours; listed so the test knows every name)
STOCK_VARS = ("DIALSTATUS", "VMSTATUS", "EXTEN", "CHANNEL")

# TEXTBACK_RESULT values
RESULT_CALLING = "calling"                 # *88: the desk phone will ring, then the caller
RESULT_QUEUED = "queued"                   # *89: a text is in the outbox
RESULT_NONE = "none"                       # refused: TEXTBACK_REASON says why
RESULT_FAILED = "failed"                   # the service failed (store, outbox): see its log
RESULTS = (RESULT_CALLING, RESULT_QUEUED, RESULT_NONE, RESULT_FAILED)

# TEXTBACK_REASON values
REASON_NOBODY = "nobody-waiting"           # no missed caller within the window
REASON_OPTED_OUT = "opted-out"             # *89: the caller opted out of texts
REASON_JUST_TEXTED = "just-texted"         # *89: a manual text to them is only minutes old
REASON_BAD_ENDPOINT = "bad-endpoint"       # *88: agi_arg_1 is not a dialable endpoint
REASON_ERROR = "error"                     # the service failed: see its log

# ---- Asterisk: contexts our snippets define (hangup handler, marks, feature codes) -----------
CTX_HANGUP = "textback-hangup"             # hangup handler: emits OUTCOME_EVENT, then Return()
CTX_INBOUND = "textback-inbound"           # Gosub from an inbound route: pushes CTX_HANGUP
CTX_MARK_CLOSED = "textback-mark-closed"   # Gosub from the closed branch: sets VAR_AFTER_HOURS
CTX_FEATURES = "textback-features"         # *88 / *89, included by the phones' context
CTX_FREEPBX_TRUNK = "from-pstn-textback"   # FreePBX: trunk context; pushes CTX_HANGUP, then from-pstn
CTX_FREEPBX_CLOSED = "textback-closed"     # FreePBX: Custom Destination for a closed branch
CONTEXTS = (CTX_HANGUP, CTX_INBOUND, CTX_MARK_CLOSED, CTX_FEATURES, CTX_FREEPBX_TRUNK,
            CTX_FREEPBX_CLOSED)

# ---- Asterisk: desk-phone feature codes over FastAGI ------------------------------------------
AGI_HOST = "127.0.0.1"                     # FastAGI has no auth: loopback only
AGI_PORT = 4573                            # FastAGI's registered port
AGI_CALLBACK = "callback"                  # agi://127.0.0.1:4573/callback  (*88)
AGI_TEXTAGAIN = "textagain"                # agi://127.0.0.1:4573/textagain (*89)
AGI_SCRIPTS = (AGI_CALLBACK, AGI_TEXTAGAIN)
AGI_ARG_ENDPOINT = "agi_arg_1"             # both scripts: the desk phone to ring, e.g. PJSIP/100
FEATURE_CALLBACK = "*88"                   # call back the oldest missed caller still waiting
FEATURE_TEXTAGAIN = "*89"                  # text the last missed caller again

# ---- FreeSWITCH: CUSTOM events fired with the `event` application -----------------------------
FS_OUTCOME_SUBCLASS = "textback::outcome"  # closed branch taken; header AfterHours: 1
FS_FEATURE_SUBCLASS = "textback::feature"  # *88 / *89 pressed on a desk phone
FS_H_FEATURE = "Textback-Feature"          # header: FS_FEATURE_CALLBACK | FS_FEATURE_TEXTAGAIN
FS_H_ENDPOINT = "Textback-Endpoint"        # header: the desk phone to ring, user/1000@domain
FS_FEATURE_CALLBACK = AGI_CALLBACK         # same words as the AGI scripts
FS_FEATURE_TEXTAGAIN = AGI_TEXTAGAIN
FS_VAR_AFTER_HOURS = "textback_after_hours"  # channel var; shows as variable_textback_after_hours
FS_VAR_CALLBACK = "textback_callback"      # set by the service's *88 originate: the call_id
FS_ORIGINATE_VARS = (FS_VAR_CALLBACK,)     # (no snippet reads it)
FS_EXT_CLOSED_PREFIX = "textback-closed-"  # transfer to textback-closed-<dest>: mark, then <dest>
FS_NAMES = (FS_OUTCOME_SUBCLASS, FS_FEATURE_SUBCLASS, FS_H_FEATURE, FS_H_ENDPOINT,
            FS_VAR_AFTER_HOURS, FS_VAR_CALLBACK, FS_EXT_CLOSED_PREFIX)
