"""The raw webhook log: every signed delivery, stored before it is acknowledged."""

from datetime import timedelta

from django.conf import settings
from django.db import connections, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WebhookLogQuerySet(models.QuerySet):
    def backlog(self) -> "WebhookLogQuerySet":
        """Deliveries still to be processed: never taken, being processed, or failed and due
        again. The one definition the dashboard, the alerts and `whatsapp_status` count;
        parked deliveries wait for their number and are counted apart, dead ones are done."""
        return self.filter(status__in=WebhookLog.BACKLOG)

    def unpark(self, *, phone_number_id: str) -> list[int]:
        """The deliveries parked for a number re-enter as received (attempts reset: waiting is
        not failing); returns their ids, oldest first, for the caller to enqueue."""
        ids = list(self.filter(status=WebhookLog.Status.PARKED,
                               parked_phone_number_id=phone_number_id)
                   .order_by("received_at", "id").values_list("pk", flat=True))
        self.filter(pk__in=ids, status=WebhookLog.Status.PARKED).update(
            status=WebhookLog.Status.RECEIVED, parked_phone_number_id="", attempts=0,
            last_error="", next_attempt_at=None,
        )
        return ids

    def due(self, *, now=None, stale_after: timedelta = timedelta(minutes=1)):
        """Rows the sweeper should (re-)enqueue: never enqueued, retry due, or lease expired."""
        now = now or timezone.now()
        S = WebhookLog.Status
        return self.filter(
            Q(status=S.RECEIVED, received_at__lte=now - stale_after)
            | Q(status=S.FAILED, next_attempt_at__lte=now)
            | Q(status=S.PROCESSING, locked_until__lte=now)
        )


class WebhookLog(models.Model):
    """Every signed delivery from Meta, byte for byte, stored before it is acknowledged."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSING = "processing", _("Processing")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed (will retry)")
        DEAD = "dead", _("Dead")
        # Waiting for its phone number to be configured (webhooks_unpark re-queues it).
        PARKED = "parked", _("Parked (number not configured)")

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    # NULL once purged by the retention (WHATSAPP_WEBHOOK_RETENTION_DAYS): leads' personal
    # data; body_sha256 and the processing columns stay.
    raw_body = models.BinaryField(_("raw body"), null=True)
    body_purged_at = models.DateTimeField(_("body purged at"), null=True, blank=True)
    # Not indexed: every index is paid on the INSERT Meta waits for; support searches by it
    # rarely (exact match in the admin).
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64)
    headers = models.JSONField(_("headers"), default=dict)
    signature_valid = models.BooleanField(_("signature valid"), default=True)
    # The processing columns below also have database defaults (db_default): the webhook's
    # INSERT (webhooks.webhook_store) sends only the columns above.
    # Filled while processing: the change fields in the delivery and the tenant, when known.
    fields = models.JSONField(_("fields"), default=list, db_default=[], blank=True)
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="webhook_logs", verbose_name=_("organization"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status,
                              default=Status.RECEIVED, db_default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0, db_default=0)
    last_error = models.TextField(_("last error"), blank=True, default="", db_default="")
    traceback = models.TextField(_("traceback"), blank=True, default="", db_default="")
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    parked_phone_number_id = models.CharField(_("parked for phone number id"), max_length=64,
                                              blank=True, default="", db_default="")

    BACKLOG = (Status.RECEIVED, Status.PROCESSING, Status.FAILED)

    objects = WebhookLogQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_webhook_logs"
        ordering = ["-received_at", "-id"]
        indexes = [
            # The sweeper and the dashboards only look at rows that still need work.
            models.Index(
                fields=["status", "next_attempt_at"], name="webhook_unfinished_idx",
                condition=~Q(status="processed"),
            ),
            # The retention purge: processed rows that still have a body, oldest first. A new
            # delivery (status received) is never in it, so Meta's INSERT does not pay for it.
            models.Index(
                fields=["received_at"], name="webhook_body_kept_idx",
                condition=Q(status="processed", raw_body__isnull=False),
            ),
            # webhooks_unpark: only parked rows, so a new delivery's INSERT never touches it.
            models.Index(
                fields=["parked_phone_number_id"], name="webhook_parked_idx",
                condition=Q(status="parked"),
            ),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        permissions = [("replay_webhooklog", _("Can replay webhook deliveries"))]

    def __str__(self) -> str:
        return f"#{self.pk} · {self.get_status_display()}"

    def claim(self, *, lease: timedelta) -> bool:
        """Takes this row for processing; False if someone else holds it or it is finished."""
        claimed = WebhookLog.claim_id(self.pk, lease=lease, using=self._state.db or "default")
        if claimed is None:
            return False
        self.status, self.locked_until, self.attempts = (claimed.status, claimed.locked_until,
                                                         claimed.attempts)
        return True

    @classmethod
    def claim_id(cls, pk: int, *, lease: timedelta, using: str = "default"):
        """Takes row `pk` for processing and returns it, body included; None when someone else
        holds it, it is finished, or it was abandoned after its last attempt (the caller
        buries those).

        One conditional `UPDATE … RETURNING *`: the ORM would need an UPDATE and a SELECT, and
        this runs once per delivery on the hot path. Attempts are counted here, before any
        work, so a payload that kills the worker still uses one up.
        """
        now = timezone.now()
        S = cls.Status
        when = connections[using].ops.adapt_datetimefield_value
        claimed = list(cls.objects.using(using).raw(
            f"UPDATE {cls._meta.db_table} SET status = %s, locked_until = %s, "
            "attempts = attempts + 1 WHERE id = %s AND (status IN (%s, %s) "
            "OR (status = %s AND locked_until <= %s AND attempts < %s)) RETURNING *",
            [S.PROCESSING, when(now + lease), pk, S.RECEIVED, S.FAILED,
             S.PROCESSING, when(now), settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS],
        ))
        return claimed[0] if claimed else None

    @classmethod
    def claim_ids(cls, pks: list[int], *, lease: timedelta, using: str = "default") -> dict:
        """`claim_id` for a drainer's whole batch in one statement: {pk: row} of the rows
        taken, all with the same `locked_until` (so one fenced UPDATE can finish them)."""
        if not pks:
            return {}
        now = timezone.now()
        S = cls.Status
        when = connections[using].ops.adapt_datetimefield_value
        marks = ", ".join(["%s"] * len(pks))
        claimed = cls.objects.using(using).raw(
            f"UPDATE {cls._meta.db_table} SET status = %s, locked_until = %s, "
            f"attempts = attempts + 1 WHERE id IN ({marks}) AND (status IN (%s, %s) "
            "OR (status = %s AND locked_until <= %s AND attempts < %s)) RETURNING *",
            [S.PROCESSING, when(now + lease), *pks, S.RECEIVED, S.FAILED,
             S.PROCESSING, when(now), settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS],
        )
        return {row.pk: row for row in claimed}

    # --- An attempt's outcome: each writes only while the row is still this attempt's ------
    def _owned(self) -> "WebhookLogQuerySet":
        """This row while our lease holds (fencing: a newer attempt changed `locked_until`)."""
        return WebhookLog.objects.filter(pk=self.pk, status=self.Status.PROCESSING,
                                         locked_until=self.locked_until)

    def mark_processed(self, *, fields: list[str], organization_id) -> bool:
        """False when the lease was lost: the caller must roll its work back."""
        return bool(self._owned().update(
            status=self.Status.PROCESSED, processed_at=timezone.now(), fields=fields,
            organization_id=organization_id, locked_until=None, next_attempt_at=None,
            last_error="", traceback=""))

    def mark_failed(self, error: str, traceback: str, *, dead: bool, retry_in: timedelta
                    ) -> bool:
        """Failed (due again after `retry_in`) or dead (kept with its error for replay)."""
        return bool(self._owned().update(
            status=self.Status.DEAD if dead else self.Status.FAILED,
            last_error=error[:2000], traceback=traceback[-20000:],
            next_attempt_at=None if dead else timezone.now() + retry_in, locked_until=None))

    def park(self, phone_number_id: str, reason: str) -> bool:
        """Waits for its number to be configured (`WebhookLog.objects.unpark`); not a failure."""
        return bool(self._owned().update(
            status=self.Status.PARKED, parked_phone_number_id=phone_number_id[:64],
            last_error=f"Parked: {reason}"[:2000], traceback="", next_attempt_at=None,
            locked_until=None))
