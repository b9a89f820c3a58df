"""The app's own Graph nodes, read with the app token `APP_ID|APP_SECRET` (§2.2, §3):
`debug_token` of the app token itself and `GET /{app_id}/subscriptions`, the webhook fields
ticked for the app (App Dashboard › WhatsApp › Configuration)."""

import base64
import binascii
import hmac

from django.conf import settings
from django.http import HttpRequest

from .graph_access import (
    check_proof,
    invalid_param,
    invalid_token,
    is_system_user_token,
    no_permission,
    raw_token,
)
from .models import Switches, Waba


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



def client_wabas(request: HttpRequest, business_id: str) -> dict:
    """`GET /{partner_business_id}/client_whatsapp_business_accounts` (system user token): the
    WABAs shared with the partner, oldest first, `limit` a page with an `after` cursor and a
    `next` link while more remain, as Graph pages its edges."""
    token = raw_token(request)
    if not is_system_user_token(token):
        raise invalid_token()
    check_proof(request, token, required=False)
    if business_id != settings.SANDBOX_PARTNER_BUSINESS_ID:
        raise no_permission(business_id, "get")
    try:
        limit = max(1, min(100, int(request.GET.get("limit") or 25)))
        offset = int(base64.urlsafe_b64decode(request.GET.get("after") or "MA==").decode())
    except (ValueError, binascii.Error) as exc:
        raise invalid_param("after") from exc
    wabas = list(Waba.objects.filter(shared=True).select_related("business")
                 .order_by("created_at", "id")[offset:offset + limit + 1])
    rows = [{"id": w.id, "name": w.name,
             "owner_business_info": {"id": w.business_id, "name": w.business.name}}
            for w in wabas[:limit]]
    cursor = base64.urlsafe_b64encode(str(offset + len(rows)).encode()).decode()
    paging: dict = {"cursors": {"before": request.GET.get("after") or "MA==", "after": cursor}}
    if len(wabas) > limit:
        paging["next"] = request.build_absolute_uri(f"?limit={limit}&after={cursor}")
    return {"data": rows, "paging": paging}
