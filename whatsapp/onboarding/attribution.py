"""Which tenant a WABA belongs to: from Meta's PARTNER_ADDED webhook (tracking code, a WABA
already bound, an owner business) or from the browser's proof (the code exchanged for a token
that covers the WABA). Anything else is an orphan for support, never a guess.

What the browser relays decides nothing by itself: its `wabaId` counts only when debug_token
says the exchanged token covers it, and its `businessId` is never stored. The owner business
comes from Meta only (the signed webhook's `waba_info`, or Graph asked with the proven token),
and Meta's value always replaces a stored one (SPEC §8.15, issue 14 §1)."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.core.payloads import AccountUpdate
from whatsapp.models import Connection, Onboarding

from .connections import connection_bind, pipeline_enqueue
from .signup import (
    OnboardingError,
    onboarding_complete,
    onboarding_for_callback,
    onboarding_for_code,
)

logger = logging.getLogger(__name__)


WEBHOOK_ACTOR = "meta-webhook"
_NO_MATCH = "no organization could be matched"


@dataclass
class Attribution:
    organization: Organization | None
    via: str
    onboarding: Onboarding | None = None
    # Why no organization was chosen, for support (e.g. an owner business several tenants own).
    reason: str = ""


def _owner_business_attribution(owner_business_id: str) -> Attribution:
    """The one organization for which Meta proved this owner business. Unproven owners count
    for nothing; two organizations proven for the same business are a question for support."""
    organization_ids = list(
        Connection.objects.filter(owner_business_id=owner_business_id,
                                  owner_business_source__in=Connection.PROVEN_OWNER_SOURCES,
                                  organization__isnull=False)
        .order_by().values_list("organization_id", flat=True).distinct()[:2]
    )
    if len(organization_ids) > 1:
        logger.error("Owner business %s is proven for several organizations: orphan for support",
                     owner_business_id)
        return Attribution(None, "", reason="ambiguous_owner_business")
    if organization_ids:
        return Attribution(Organization.objects.get(pk=organization_ids[0]), "owner_business")
    return Attribution(None, "")


def _attribute(update: AccountUpdate) -> Attribution:
    """SPEC §3 order: tracking code → WABA already bound → owner business → orphan."""
    if update.tracking_code:
        onboarding = onboarding_for_code(update.tracking_code, lock=True)
        if onboarding is None:
            logger.error("PARTNER_ADDED with unknown tracking code for WABA %s", update.waba_id)
        elif onboarding.expire_if_due(save=False):
            # Seed 000 §7.1: an expired code does not attach; the page shows "session expired".
            onboarding.webhook_received_at = timezone.now()
            onboarding.waba_id = update.waba_id
            onboarding.save(update_fields=["status", "webhook_received_at", "waba_id"])
            logger.error("PARTNER_ADDED with expired tracking code for WABA %s", update.waba_id)
        elif onboarding.effective_status in (Onboarding.Status.PENDING,
                                             Onboarding.Status.COMPLETED):
            return Attribution(onboarding.organization, "tracking_code", onboarding)
    # The WABA, or the Messaging Account Meta names for it (account model, §0).
    bound = (
        Connection.objects.for_account(update.waba_id, update.accounts.messaging_account_id)
        .filter(organization__isnull=False)
        .select_related("organization").order_by("-created_at").first()
    )
    if bound:
        return Attribution(bound.organization, "waba")
    if update.owner_business_id:
        return _owner_business_attribution(update.owner_business_id)
    return Attribution(None, "")


@transaction.atomic
def connection_partner_added(*, update: AccountUpdate, payload: dict | None = None) -> Connection:
    """Applies PARTNER_ADDED: attributes the WABA to a tenant (or keeps it as an orphan)."""
    attribution = _attribute(update)
    connection, created = Connection.objects.live_get_or_create(
        update.waba_id,
        {
            "organization": attribution.organization,
            "owner_business_id": update.owner_business_id,
            "owner_business_source": (Connection.OwnerSource.WEBHOOK
                                      if update.owner_business_id else ""),
            "partner_business_id": update.partner_business_id,
            "status": Connection.Status.ERROR,
            "source_event": payload,
        },
    )
    was_bound = connection.organization_id is not None and not created
    if connection.organization_id is None and attribution.organization is not None and (
        created or attribution.via == "tracking_code"
    ):
        # A tracking code is proof of the tenant's session, so it may adopt an orphan; the
        # weaker correlations only ever apply to a connection created just now.
        connection.organization = attribution.organization
    elif (attribution.organization is not None
          and connection.organization_id not in (None, attribution.organization.pk)):
        logger.error("WABA %s is bound to another organization; %s correlation ignored",
                     update.waba_id, attribution.via)
        attribution = Attribution(connection.organization, "waba")

    if update.owner_business_id and connection.set_owner_business(
            update.owner_business_id, source=Connection.OwnerSource.WEBHOOK):
        logger.warning("WABA %s: the stored owner business was replaced by Meta's (webhook)",
                       update.waba_id)
    connection.partner_business_id = connection.partner_business_id or update.partner_business_id
    connection.learn_account_ids(messaging_account_id=update.accounts.messaging_account_id,
                                 waac_id=update.accounts.waac_id)
    connection.last_webhook_at = timezone.now()
    if attribution.onboarding and connection.organization_id == attribution.organization.pk:
        connection.onboarding = attribution.onboarding
        connection.tracking_code_used = attribution.onboarding.tracking_code
        onboarding_complete(attribution.onboarding, waba_id=update.waba_id, payload=payload)

    if connection.organization_id is None:
        reason = attribution.reason or "no_match"
        metadata = {"owner_business_id": update.owner_business_id, "reason": reason}
        # A popup signup's PARTNER_ADDED usually arrives seconds before the browser's proof:
        # while some organization's onboarding is pending, the WABA awaits that proof, and only
        # becomes an orphan once the grace period passes unattributed (`orphans_confirm`).
        awaiting = created and Onboarding.objects.pending_signups().exists()
        if awaiting:
            connection.error_message = f"{Connection.AWAITING_BROWSER}: {reason}"
        elif not connection.error_message.startswith(Connection.AWAITING_BROWSER):
            connection.error_message = f"orphan: {attribution.reason or _NO_MATCH}"
        connection.save()
        if awaiting:
            audit_record(action=AuditLog.Action.WABA_AWAITING_BROWSER, actor_label=WEBHOOK_ACTOR,
                         target=f"waba:{update.waba_id}", metadata=metadata)
        elif created:
            audit_record(action=AuditLog.Action.WABA_ORPHANED, actor_label=WEBHOOK_ACTOR,
                         target=f"waba:{update.waba_id}", metadata=metadata)
        return connection

    connection.attributed_by = connection.attributed_by or attribution.via
    if was_bound:
        connection.save()
    else:
        connection_bind(connection, via=connection.attributed_by, actor_label=WEBHOOK_ACTOR)
    pipeline_enqueue(connection.pk)
    return connection


def orphans_confirm(*, now=None) -> list[Connection]:
    """WABAs that awaited the browser's proof for longer than WHATSAPP_ORPHAN_GRACE_SECONDS
    without being attributed become real orphans: audited as such, for support to claim."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WHATSAPP_ORPHAN_GRACE_SECONDS)
    confirmed = []
    with transaction.atomic():
        for connection in (Connection.objects.awaiting_browser()
                           .filter(created_at__lte=cutoff).select_for_update(skip_locked=True)):
            reason = connection.error_message.partition(":")[2].strip() or "no_match"
            connection.error_message = "orphan: " + (_NO_MATCH if reason == "no_match" else reason)
            connection.save(update_fields=["error_message", "updated_at"])
            audit_record(action=AuditLog.Action.WABA_ORPHANED, actor_label="system",
                         target=f"waba:{connection.waba_id}",
                         metadata={"owner_business_id": connection.owner_business_id,
                                   "reason": reason,
                                   "awaited_seconds": int((now - connection.created_at)
                                                          .total_seconds())})
            logger.error("WABA %s still unattributed after the grace period: orphan",
                         connection.waba_id)
            confirmed.append(connection)
    return confirmed


def _granted_wabas(debug: dict) -> set[str]:
    granted: set[str] = set()
    for scope in debug.get("granular_scopes") or []:
        if scope.get("scope") == "whatsapp_business_management":
            granted.update(str(t) for t in scope.get("target_ids") or [])
    return granted


def connection_from_browser_finish(*, organization: Organization, user, state: str, code: str,
                                   event: str, waba_id: str = "", phone_number_id: str = "",
                                   business_id: str = "", waac_id: str = "",
                                   request=None) -> Connection:
    """The popup finished: exchange the code (30 s life) outside any transaction, prove with
    debug_token that the token covers the WABA, then bind the WABA to the caller's org.

    `waba_id` may be a Messaging Account id (account model phase 1, §0): it is proven the same
    way. `waac_id` (phase 2) is kept for support as the signup reported it; it routes nothing."""
    # Fail fast, before Graph. No lock: this runs in autocommit, outside any transaction; the
    # locked check is repeated inside _bind_from_browser.
    onboarding_for_callback(organization=organization, state=state, lock=False)
    client = GraphClient()
    try:
        token = str(client.exchange_code(code).get("access_token") or "")
        debug = client.debug_token(token) if token else {}
    except GraphError as exc:
        if exc.is_transient:
            raise OnboardingError("meta_unavailable",
                                  _("Meta is unavailable right now. Please try again.")) from exc
        raise OnboardingError("code_refused",
                              _("Meta did not accept the authorization code: %(error)s")
                              % {"error": exc.message}) from exc
    granted = _granted_wabas(debug)
    if not waba_id and len(granted) == 1:
        waba_id = next(iter(granted))  # a finish message may be missing: the token says which
    if not token or not debug.get("is_valid", False) or waba_id not in granted:
        raise OnboardingError("waba_not_granted", _("The token from Meta does not cover this "
                                                    "WhatsApp Business account."))
    owner = _owner_from_graph(token, waba_id)
    if business_id and business_id != owner:
        # The page relayed another business than Meta's: ignored (a tampered relay, or a
        # business Meta has not answered for yet). Never stored.
        logger.warning("Callback for WABA %s relayed businessId %s; Meta says %r: ignored",
                       waba_id, business_id, owner)
    return _bind_from_browser(organization=organization, user=user, state=state, token=token,
                              debug=debug, event=event, waba_id=waba_id,
                              phone_number_id=phone_number_id, owner=owner, waac_id=waac_id,
                              request=request)


def _owner_from_graph(token: str, waba_id: str) -> str:
    """`GET /{waba}?fields=owner_business_info` with the token debug_token just proved covers
    the WABA. Best effort: without an answer the owner stays unknown until PARTNER_ADDED."""
    try:
        return GraphClient(token).waba_owner_business(waba_id)
    except GraphError as exc:
        logger.warning("Owner business of WABA %s not read from Graph: %s", waba_id, exc)
        return ""


@transaction.atomic
def _bind_from_browser(*, organization, user, state, token, debug, event, waba_id,
                       phone_number_id, owner, waac_id, request) -> Connection:
    onboarding = onboarding_for_callback(organization=organization, state=state)
    connection, created = Connection.objects.live_get_or_create(
        waba_id, {"organization": organization, "status": Connection.Status.CONNECTING},
    )
    if connection.organization_id not in (None, organization.pk):
        raise OnboardingError("waba_taken", _("This WhatsApp Business account is connected to "
                                              "another organization. Please contact support."))
    # The browser's proof attaches an orphan that the webhook created before us.
    newly_bound = created or connection.organization_id is None
    connection.organization = organization
    connection.onboarding = onboarding
    connection.tracking_code_used = onboarding.tracking_code
    connection.finish_event = event
    connection.requested_phone_number_id = phone_number_id or connection.requested_phone_number_id
    if waac_id and not connection.waac_id:
        connection.waac_id = waac_id  # never over Meta's own (signed webhook) value
    if owner and connection.set_owner_business(owner, source=Connection.OwnerSource.GRAPH):
        logger.warning("WABA %s: the stored owner business was replaced by Meta's (Graph)",
                       waba_id)
    connection.attributed_by = "browser_callback"
    connection.store_token(token, source="code_exchange",
                           expires_at=int(debug.get("expires_at") or 0), save=False)
    if newly_bound:
        connection_bind(connection, via="browser_callback", actor=user, request=request)
    else:
        connection.save()
    onboarding_complete(onboarding, waba_id=waba_id, finish_event=event)
    pipeline_enqueue(connection.pk)
    return connection
