"""Subscription reconciliation: is our app still subscribed to each active WABA?

Nothing tells us when Meta drops a subscription, and without it no webhook arrives for that
WABA (META-PLATFORM §5.3). So we ask, re-subscribe when missing, and raise an alert.
"""

import logging
from dataclasses import dataclass

from django.conf import settings

from whatsapp.core.crypto import DecryptionError
from whatsapp.core.graph import GraphClient, GraphError

from .models import Connection

logger = logging.getLogger(__name__)


@dataclass
class SubscriptionCheck:
    waba_id: str
    result: str  # subscribed | resubscribed | resubscribe_failed | error | no_token

    def as_dict(self) -> dict:
        return {"waba_id": self.waba_id, "result": self.result}


def _is_ours(app: dict) -> bool:
    data = app.get("whatsapp_business_api_data") or {}
    return settings.META_APP_ID in (str(data.get("id", "")), str(app.get("id", "")))


def connection_reconcile_subscription(connection: Connection) -> SubscriptionCheck:
    from ops.alerts import alert_set

    try:
        token = connection.get_access_token()
    except DecryptionError:
        token = ""
    if not token:
        return SubscriptionCheck(connection.waba_id, "no_token")
    client = GraphClient(token)
    try:
        if any(_is_ours(app) for app in client.subscribed_apps(connection.waba_id)):
            alert_set(f"subscription_missing:{connection.waba_id}", active=False)
            return SubscriptionCheck(connection.waba_id, "subscribed")
        ok = client.subscribe_app(connection.waba_id)
    except GraphError as exc:
        logger.warning("Subscription check for WABA %s failed: %s", connection.waba_id, exc)
        return SubscriptionCheck(connection.waba_id, "error")
    result = "resubscribed" if ok else "resubscribe_failed"
    alert_set(f"subscription_missing:{connection.waba_id}", active=True,
              message=f"App was not subscribed to WABA {connection.waba_id}: {result}",
              details={"organization_id": str(connection.organization_id or "")})
    return SubscriptionCheck(connection.waba_id, result)


def subscriptions_reconcile() -> list[SubscriptionCheck]:
    connections = Connection.objects.filter(status=Connection.Status.CONNECTED).exclude(
        access_token_encrypted="").exclude(token_status=Connection.TokenStatus.INVALID)
    return [connection_reconcile_subscription(c) for c in connections.order_by("created_at")]
