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
# Where the product calls Graph (the `graph` fixture answers there).
GRAPH = f"{settings.META_GRAPH_API_URL}/{settings.META_GRAPH_API_VERSION}"


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


def change_value(body: dict, change: int = 0, entry: int = 0) -> dict:
    """The `value` of one change of a delivery (the first by default), to edit a fixture."""
    return body["entry"][entry]["changes"][change]["value"]


def graph_signup(graph, *, waba: str, token: str = "EAAbusiness") -> None:
    """Meta's answers to a finished Embedded Signup: the code exchange, a token whose granular
    scopes cover `waba`, and the app's subscription to it."""
    graph.get(f"{GRAPH}/oauth/access_token", json={"access_token": token, "token_type": "bearer"})
    graph.get(f"{GRAPH}/debug_token", json={"data": {
        "is_valid": True, "type": "SYSTEM_USER", "expires_at": 0,
        "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": [waba]},
                            {"scope": "whatsapp_business_messaging", "target_ids": [waba]}],
    }})
    graph.post(f"{GRAPH}/{waba}/subscribed_apps", json={"success": True})
    graph.delete(f"{GRAPH}/{waba}/subscribed_apps", json={"success": True})


def partner_added(*, waba_id: str = "102000000000101", owner: str = "203000000000101",
                  tracking_code: str | None = None) -> dict:
    body = copy.deepcopy(load("account_update_partner_added.json"))
    value = change_value(body)
    value["waba_info"] = {"waba_id": waba_id, "owner_business_id": owner}
    if tracking_code:
        value["sessionInfo"] = {"trackingCode": str(tracking_code)}
    return body
