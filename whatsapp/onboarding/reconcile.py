"""Orphans found and matched (issue 20 §4).

`wabas_reconcile` compares the WABAs Meta says are shared with our partner business
(`GET /{META_PARTNER_BUSINESS_ID}/client_whatsapp_business_accounts`, every page) with our
connections: a shared WABA we do not know becomes an orphan for support (a PARTNER_ADDED we
never received), and a connected WABA Meta no longer shares with us is disconnected with reason
`no_longer_shared`. Each finding is audited once (the next run finds nothing new) and alerted by
ops.alerts. `orphan_suggestions` ranks the organizations whose signup was pending around an
orphan's arrival, for the claim screen; `orphan_under_review` tells such a tenant that support
is on it.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.core.graph import GraphClient
from whatsapp.models import Connection, Onboarding

from .connections import connection_disconnect
from .signup import OnboardingError

logger = logging.getLogger(__name__)

ACTOR = "reconciliation"
NO_LONGER_SHARED = "no_longer_shared"


@dataclass
class Finding:
    kind: str  # "unknown_waba" (now an orphan) or "no_longer_shared" (now disconnected)
    waba_id: str
    name: str = ""
    organization: str = ""

    def as_json(self) -> dict:
        return {"kind": self.kind, "wabaId": self.waba_id, "name": self.name,
                "organization": self.organization}


@dataclass
class Reconciliation:
    shared: int = 0
    known: int = 0
    findings: list[Finding] = field(default_factory=list)
    dry_run: bool = False
    # Why disconnections were held back (an empty listing never disconnects anyone).
    held_back: str = ""

    def as_json(self) -> dict:
        return {"shared": self.shared, "known": self.known, "dryRun": self.dry_run,
                "heldBack": self.held_back, "findings": [f.as_json() for f in self.findings]}


def reconciliation_configured() -> bool:
    return bool(settings.META_PARTNER_BUSINESS_ID and settings.META_SYSTEM_USER_TOKEN)


def wabas_reconcile(*, dry_run: bool = False) -> Reconciliation:
    """One comparison of Meta's listing with our connections; `dry_run` changes nothing."""
    if not reconciliation_configured():
        raise OnboardingError("reconcile_unconfigured", _(
            "Reconciliation needs META_PARTNER_BUSINESS_ID and META_SYSTEM_USER_TOKEN."))
    listing = GraphClient(settings.META_SYSTEM_USER_TOKEN).client_wabas(
        settings.META_PARTNER_BUSINESS_ID)
    shared = {str(row.get("id")): row for row in listing if row.get("id")}
    live = {c.waba_id: c for c in Connection.objects.active().select_related("organization")}
    report = Reconciliation(shared=len(shared), known=len(set(shared) & set(live)),
                            dry_run=dry_run)
    for waba_id in sorted(set(shared) - set(live)):
        report.findings.append(Finding("unknown_waba", waba_id,
                                       name=str(shared[waba_id].get("name") or "")))
        if not dry_run:
            _orphan_from_listing(waba_id, shared[waba_id])
    gone = [c for c in live.values()
            if c.waba_id not in shared and c.status == Connection.Status.CONNECTED]
    if gone and not shared:
        # An empty listing (a wrong partner id, a Meta hiccup) must never disconnect everyone.
        report.held_back = "empty_listing"
        gone = []
    for connection in gone:
        report.findings.append(Finding(
            NO_LONGER_SHARED, connection.waba_id, name=connection.business_name,
            organization=connection.organization.name if connection.organization else ""))
        if not dry_run:
            _disconnect_unshared(connection)
    return report


def _orphan_from_listing(waba_id: str, row: dict) -> None:
    owner = row.get("owner_business_info") if isinstance(row.get("owner_business_info"),
                                                          dict) else {}
    with transaction.atomic():
        connection, created = Connection.objects.live_get_or_create(waba_id, {
            "organization": None, "status": Connection.Status.ERROR,
            "business_name": str(row.get("name") or "")[:200],
            "owner_business_id": str(owner.get("id") or ""),
            # Meta's listing, asked with our system user: Meta's word about the owner.
            "owner_business_source": Connection.OwnerSource.GRAPH if owner.get("id") else "",
            "partner_business_id": settings.META_PARTNER_BUSINESS_ID,
            "error_message": "orphan: found by reconciliation (no PARTNER_ADDED received)",
            "source_event": {"reconciliation": row},
        })
        if created:
            audit_record(action=AuditLog.Action.WABA_FOUND_BY_RECONCILIATION,
                         actor_label=ACTOR, target=f"waba:{waba_id}",
                         metadata={"owner_business_id": connection.owner_business_id,
                                   "name": connection.business_name})
            logger.error("WABA %s is shared with us but we never heard of it: orphan", waba_id)


def _disconnect_unshared(connection: Connection) -> None:
    disconnected = connection_disconnect(waba_id=connection.waba_id, reason=NO_LONGER_SHARED,
                                         actor_label=ACTOR)
    if disconnected is not None:
        audit_record(action=AuditLog.Action.WABA_NO_LONGER_SHARED,
                     organization=disconnected.organization, actor_label=ACTOR,
                     target=f"waba:{connection.waba_id}", metadata={"reason": NO_LONGER_SHARED})
        logger.error("WABA %s is no longer shared with us: disconnected", connection.waba_id)


# --- Matching orphans to organizations --------------------------------------------------------
@dataclass
class Suggestion:
    organization: Organization
    onboarding: Onboarding
    seconds_apart: int

    @property
    def minutes_apart(self) -> int:
        return self.seconds_apart // 60


def orphan_suggestions(connection: Connection, *, limit: int = 5) -> list[Suggestion]:
    """Organizations whose signup was started (and not completed) around the orphan's arrival,
    closest first: the likely owner for support to claim it for (a hint, never automatic)."""
    window = timedelta(seconds=settings.WHATSAPP_ORPHAN_MATCH_WINDOW_SECONDS)
    arrived = connection.created_at
    onboardings = (Onboarding.objects
                   .filter(created_at__gte=arrived - window, created_at__lte=arrived)
                   .exclude(status=Onboarding.Status.COMPLETED)
                   .select_related("organization").order_by("-created_at"))
    best: dict[int, Suggestion] = {}
    for onboarding in onboardings:
        seconds = int((arrived - onboarding.created_at).total_seconds())
        current = best.get(onboarding.organization_id)
        if current is None or seconds < current.seconds_apart:
            best[onboarding.organization_id] = Suggestion(onboarding.organization, onboarding,
                                                          seconds)
    return sorted(best.values(), key=lambda s: s.seconds_apart)[:limit]


def orphan_under_review(organization: Organization, *, now=None) -> bool:
    """True when a WABA without an organization arrived after this organization's latest,
    still unfinished signup started (within the match window): the tenant is told support
    is confirming it, instead of waiting in silence."""
    onboarding = Onboarding.objects.filter(organization=organization).first()
    if onboarding is None or onboarding.status == Onboarding.Status.COMPLETED:
        return False
    window = timedelta(seconds=settings.WHATSAPP_ORPHAN_MATCH_WINDOW_SECONDS)
    return Connection.objects.confirmed_orphans().filter(
        created_at__gte=onboarding.created_at,
        created_at__lte=onboarding.created_at + window).exists()
