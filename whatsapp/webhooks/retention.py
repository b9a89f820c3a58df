"""Retention of raw bodies (LGPD): a processed delivery's body is removed after
`WHATSAPP_WEBHOOK_RETENTION_DAYS`; the row, its metadata and `body_sha256` stay.

Only processed deliveries lose their body: dead, failed, parked and unprocessed ones keep it
until they are resolved (a replay needs it). Batched, so millions of rows never sit in one
transaction or one lock; every UPDATE re-checks the status, so a row a replay just reset to
`received` keeps its body.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from whatsapp.models import WebhookLog


@dataclass
class PurgeResult:
    days: int
    cutoff: datetime
    purged: int = 0
    batches: int = 0


def bodies_purgeable(*, cutoff: datetime) -> QuerySet[WebhookLog]:
    """Processed deliveries received before `cutoff` that still hold a body (the partial
    index webhook_body_kept_idx)."""
    return WebhookLog.objects.filter(status=WebhookLog.Status.PROCESSED,
                                     raw_body__isnull=False, received_at__lt=cutoff)


def webhook_bodies_purge(*, days: int | None = None, batch_size: int = 1000,
                         dry_run: bool = False, max_batches: int | None = None,
                         progress=None) -> PurgeResult:
    """Removes the bodies of processed deliveries older than `days`; a dry run only counts."""
    days = settings.WHATSAPP_WEBHOOK_RETENTION_DAYS if days is None else days
    now = timezone.now()
    result = PurgeResult(days=days, cutoff=now - timedelta(days=days))
    candidates = bodies_purgeable(cutoff=result.cutoff)
    if dry_run:
        result.purged = candidates.count()
        return result
    while max_batches is None or result.batches < max_batches:
        ids = list(candidates.order_by("received_at").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        result.purged += bodies_purgeable(cutoff=result.cutoff).filter(pk__in=ids).update(
            raw_body=None, body_purged_at=now)
        result.batches += 1
        if progress:
            progress(result.purged)
        if len(ids) < batch_size:
            break
    return result
