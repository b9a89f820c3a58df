"""Data-protection requests (LGPD, Meta's data-deletion callback): one durable row each.

The row is the truth a worker resumes from: `pending` until a worker claims it, `running` with a
lease while one works (a worker that dies leaves it `running`; the sweep takes it again once the
lease ran out), `done` with the counts of what was removed.
"""

import secrets
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def new_confirmation_code() -> str:
    """What Meta shows the person: short, unguessable, URL-safe."""
    return secrets.token_hex(10)


class ErasureRequestQuerySet(models.QuerySet):
    def due(self, *, now=None, stale_after: timedelta = timedelta(minutes=1)):
        """Requests the sweep (re-)enqueues: never taken, or taken by a worker whose lease ran
        out (killed mid-way)."""
        now = now or timezone.now()
        S = ErasureRequest.State
        return self.filter(Q(state=S.PENDING, created_at__lte=now - stale_after)
                           | Q(state=S.RUNNING, locked_until__lte=now))


class ErasureRequest(models.Model):
    class Kind(models.TextChoices):
        CONTACT = "contact", _("Lead erasure (LGPD)")
        FACEBOOK_USER = "facebook_user", _("Meta data deletion request")

    class State(models.TextChoices):
        PENDING = "pending", _("Received")
        RUNNING = "running", _("In progress")
        DONE = "done", _("Completed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    state = models.CharField(_("state"), max_length=16, choices=State, default=State.PENDING,
                             db_index=True)
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("organization"))
    # The erased lead's id (not a foreign key: the row outlives the contact).
    contact_id = models.BigIntegerField(_("contact id"), null=True, blank=True)
    # SHA-256 of Meta's app-scoped user id: enough to match a repeated request, not the id.
    subject_sha256 = models.CharField(_("subject SHA-256"), max_length=64, blank=True)
    # What identifies the lead while the erasure runs (BSUIDs, phones, wamids); emptied when
    # it is done, so the request keeps no personal data.
    subject = models.JSONField(_("subject"), default=dict, blank=True)
    confirmation_code = models.CharField(_("confirmation code"), max_length=32, unique=True,
                                         default=new_confirmation_code)
    requested_by = models.ForeignKey("auth.User", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+",
                                     verbose_name=_("requested by"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    # Counts of what was removed, by kind of record.
    result = models.JSONField(_("result"), default=dict, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ErasureRequestQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_erasure_requests"
        ordering = ["-created_at"]
        constraints = [
            # One open erasure per lead: asking again while it waits returns that one.
            models.UniqueConstraint(fields=["contact_id"], name="uniq_open_contact_erasure",
                                    condition=Q(kind="contact", state__in=["pending", "running"])),
        ]
        verbose_name = _("data erasure request")
        verbose_name_plural = _("data erasure requests")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.confirmation_code}"
