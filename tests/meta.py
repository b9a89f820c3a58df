"""Meta fixtures from ../shared/meta-payloads, as Meta would send them (compact, escaped)."""

import copy
import json
import os
from pathlib import Path

from django.conf import settings

from whatsapp.webhooks.signatures import sign

PAYLOADS_DIR = Path(
    os.environ.get("META_PAYLOADS_DIR", settings.BASE_DIR.parent / "shared" / "meta-payloads")
)
WEBHOOK_URL = "/api/v1/whatsapp/webhook"


def load(name: str) -> dict:
    return json.loads((PAYLOADS_DIR / name).read_bytes())


def wire(obj: dict) -> bytes:
    """Compact JSON with non-ASCII as lowercase \\uXXXX escapes: the bytes Meta signs."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def post_signed(client, body: bytes | dict, *, secret: str | None = None, **extra):
    if isinstance(body, dict):
        body = wire(body)
    return client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(body, secret or settings.META_APP_SECRET),
        **extra,
    )


def partner_added(*, waba_id: str = "102000000000101", owner: str = "203000000000101",
                  tracking_code: str | None = None) -> dict:
    body = copy.deepcopy(load("account_update_partner_added.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["waba_info"] = {"waba_id": waba_id, "owner_business_id": owner}
    if tracking_code:
        value["sessionInfo"] = {"trackingCode": str(tracking_code)}
    return body
