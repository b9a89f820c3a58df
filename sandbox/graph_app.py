"""The app's own Graph nodes, read with the app token `APP_ID|APP_SECRET` (§2.2, §3):
`debug_token` of the app token itself and `GET /{app_id}/subscriptions`, the webhook fields
ticked for the app (App Dashboard › WhatsApp › Configuration)."""

import hmac

from django.conf import settings
from django.http import HttpRequest

from .graph_access import check_proof, invalid_token, no_permission, raw_token
from .models import Switches


def app_token() -> str:
    return f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"


def is_app_token(value: str) -> bool:
    return hmac.compare_digest(value.encode(), app_token().encode())


def app_token_data() -> dict:
    """debug_token of an app token: type APP, valid, no expiry, no user."""
    return {"app_id": settings.META_APP_ID, "type": "APP",
            "application": "Qualifica Leads (sandbox)", "is_valid": True, "scopes": []}


def app_subscriptions(request: HttpRequest, app_id: str) -> dict:
    """`GET /{app_id}/subscriptions`: one entry per object the app subscribed to."""
    token = raw_token(request)
    if not is_app_token(token):
        raise invalid_token(message="Invalid OAuth access token signature.")
    check_proof(request, token, required=False)
    if app_id != settings.META_APP_ID:
        raise no_permission(app_id)
    switches = Switches.get()
    return {"data": [{
        "object": "whatsapp_business_account",
        "callback_url": switches.target_url,
        "active": True,
        "fields": [{"name": name, "version": settings.META_GRAPH_API_VERSION}
                   for name in switches.app_fields],
    }]}

