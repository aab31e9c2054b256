"""Standard Webhooks headers, signed by the `standardwebhooks` package (the reference
implementation receivers verify with), one v1 signature per secret: during a rotation the
endpoint's secret file holds the new and the old secret and either verifies."""
from __future__ import annotations

from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

from .. import __version__


def headers(secrets: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    when = datetime.fromtimestamp(timestamp, timezone.utc)
    sigs = " ".join(Webhook(s).sign(msg_id, when, body) for s in secrets.split())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": sigs,
            "content-type": "application/json", "user-agent": f"pbx-textback/{__version__}"}


def new_secret() -> str:
    import base64
    import os
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()
