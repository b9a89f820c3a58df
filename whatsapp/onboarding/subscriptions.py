"""Subscription reconciliation: is our app still subscribed to each active WABA?

Nothing tells us when Meta drops a subscription, and without it no webhook arrives for that
WABA (META-PLATFORM §5.3). So we ask and re-subscribe when missing; each check is returned to
the caller (ops' beat task), which decides what to alert.
"""

import logging
from dataclasses import dataclass

from django.conf import settings

from whatsapp.core.crypto import DecryptionError
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection

logger = logging.getLogger(__name__)


@dataclass
class SubscriptionCheck:
    waba_id: str
    result: str  # subscribed | resubscribed | resubscribe_failed | error | no_token
    organization_id: str = ""

    @property
    def was_missing(self) -> bool | None:
        """True when Meta had dropped our subscription, False when it was there, None when
        the check could not tell (no token, Graph error)."""
        if self.result in ("resubscribed", "resubscribe_failed"):
            return True
        return False if self.result == "subscribed" else None

    def as_dict(self) -> dict:
        return {"waba_id": self.waba_id, "result": self.result}


def _is_ours(app: dict) -> bool:
    data = app.get("whatsapp_business_api_data") or {}
    return settings.META_APP_ID in (str(data.get("id", "")), str(app.get("id", "")))


def connection_reconcile_subscription(connection: Connection) -> SubscriptionCheck:
    try:
        token = connection.get_access_token()
    except DecryptionError:
        token = ""
    if not token:
        return SubscriptionCheck(connection.waba_id, "no_token")
    client = GraphClient(token)
    try:
        if any(_is_ours(app) for app in client.subscribed_apps(connection.waba_id)):
            return SubscriptionCheck(connection.waba_id, "subscribed")
        ok = client.subscribe_app(connection.waba_id)
    except GraphError as exc:
        logger.warning("Subscription check for WABA %s failed: %s", connection.waba_id, exc)
        return SubscriptionCheck(connection.waba_id, "error")
    result = "resubscribed" if ok else "resubscribe_failed"
    return SubscriptionCheck(connection.waba_id, result, str(connection.organization_id or ""))


def subscriptions_reconcile() -> list[SubscriptionCheck]:
    connections = Connection.objects.filter(status=Connection.Status.CONNECTED).exclude(
        access_token_encrypted="").exclude(token_status=Connection.TokenStatus.INVALID)
    return [connection_reconcile_subscription(c) for c in connections.order_by("created_at")]
