"""Replaying stored deliveries (dj-stripe style): select them, reset their processing columns,
enqueue them again; audited once per tenant and batch."""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.models import WebhookLog

from .intake import webhook_enqueue

logger = logging.getLogger(__name__)


def webhooks_for_replay(*, ids: list[int] | None = None, failed: bool = False,
                        dead: bool = False, field: str = "",
                        since: datetime | None = None) -> QuerySet[WebhookLog]:
    """The deliveries a replay selects; filters combine with AND, statuses with OR."""
    qs = WebhookLog.objects.all()
    if ids:
        qs = qs.filter(pk__in=ids)
    statuses = [s for s, wanted in ((WebhookLog.Status.FAILED, failed),
                                    (WebhookLog.Status.DEAD, dead)) if wanted]
    if statuses:
        qs = qs.filter(status__in=statuses)
    if field:
        qs = qs.filter(fields__contains=[field])
    if since:
        qs = qs.filter(received_at__gte=since)
    return qs.order_by("received_at", "pk")


@dataclass
class ReplayResult:
    replayed: list[int] = field(default_factory=list)
    skipped_in_progress: list[int] = field(default_factory=list)
    # Bodies removed by the retention: nothing left to process, refused.
    skipped_purged: list[int] = field(default_factory=list)


def webhooks_replay(*, logs: QuerySet[WebhookLog], actor=None, actor_label: str = "",
                    request=None, batch_size: int = 500, progress=None) -> ReplayResult:
    """Resets the selected deliveries to `received` and enqueues them (dj-stripe style).

    Only the processing columns are reset; `raw_body` is never touched. Handlers are
    idempotent, so replaying a processed delivery changes nothing it already did. A row held by
    a live attempt is skipped: resetting it would let two attempts run at once; so is one
    whose body the retention removed (there is nothing left to process).
    """
    result = ReplayResult()
    ids = list(logs.values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        now = timezone.now()
        with transaction.atomic():
            rows = (WebhookLog.objects.filter(pk__in=chunk, raw_body__isnull=False)
                    .exclude(status=WebhookLog.Status.PROCESSING, locked_until__gt=now))
            purged = set(WebhookLog.objects.filter(pk__in=chunk, raw_body__isnull=True)
                         .values_list("pk", flat=True))
            by_org: dict[object, list[int]] = defaultdict(list)
            fields_of = {}
            for pk, org_id, fields in rows.values_list("pk", "organization_id", "fields"):
                by_org[org_id].append(pk)
                fields_of[pk] = fields
            reset_ids = [pk for group in by_org.values() for pk in group]
            WebhookLog.objects.filter(pk__in=reset_ids).update(
                status=WebhookLog.Status.RECEIVED, attempts=0, last_error="", traceback="",
                next_attempt_at=None, locked_until=None, processed_at=None,
            )
            # One audit entry per tenant and batch (not per row): who replayed what, and when.
            for org_id, pks in by_org.items():
                _audit_replay(org_id, pks, actor, actor_label, request)
            for pk in reset_ids:
                # Its lane's queue (whatsapp/core/lanes.py).
                transaction.on_commit(
                    lambda pk=pk, fields=fields_of[pk]: webhook_enqueue(pk, fields=fields))
        result.replayed.extend(reset_ids)
        result.skipped_purged.extend(sorted(purged))
        result.skipped_in_progress.extend(sorted(set(chunk) - set(reset_ids) - purged))
        if progress:
            progress(min(start + batch_size, len(ids)), len(ids))
    return result


def _audit_replay(org_id, pks: list[int], actor, actor_label: str, request) -> None:
    organization = Organization.objects.filter(pk=org_id).first() if org_id else None
    audit_record(
        action=AuditLog.Action.WEBHOOK_REPLAYED, organization=organization, actor=actor,
        actor_label=actor_label, request=request, target=f"webhooks:{len(pks)}",
        metadata={"ids": pks[:1000], "count": len(pks)},
    )
