"""Connections: a customer's WABA shared with our app, and the orphans support claims."""

import uuid
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from whatsapp.core import crypto

from .onboarding import Onboarding


class ConnectionQuerySet(models.QuerySet):
    def active(self) -> "ConnectionQuerySet":
        return self.exclude(status=Connection.Status.DISCONNECTED)

    def orphans(self) -> "ConnectionQuerySet":
        """Every live connection without an organization, awaiting the browser or not."""
        return self.active().filter(organization__isnull=True)

    def awaiting_browser(self) -> "ConnectionQuerySet":
        """Unattributed WABAs whose PARTNER_ADDED came while a signup was pending: the
        browser's proof may still bind them (whatsapp.onboarding.attribution)."""
        return self.orphans().filter(error_message__startswith=Connection.AWAITING_BROWSER)

    def confirmed_orphans(self) -> "ConnectionQuerySet":
        """Orphans support must act on: not (or no longer) awaiting the browser."""
        return self.orphans().exclude(error_message__startswith=Connection.AWAITING_BROWSER)

    def stalled(self, *, seconds: int, now=None) -> "ConnectionQuerySet":
        """Tenants' connections still `connecting` with no progress for `seconds`."""
        since = (now or timezone.now()) - timedelta(seconds=seconds)
        return self.filter(organization__isnull=False, status=Connection.Status.CONNECTING,
                           updated_at__lte=since)

    def pipeline_errors(self) -> "ConnectionQuerySet":
        """Tenants' connections in `error` (orphans, also `error`, are listed apart)."""
        return self.filter(organization__isnull=False, status=Connection.Status.ERROR)

    def token_invalid(self) -> "ConnectionQuerySet":
        return self.active().filter(organization__isnull=False,
                                    token_status=Connection.TokenStatus.INVALID)

    def token_expiring(self, *, days: int, now=None) -> "ConnectionQuerySet":
        """Live tokens that expire within `days` (tokens that never expire have no date)."""
        now = now or timezone.now()
        return self.active().filter(organization__isnull=False,
                                    token_status=Connection.TokenStatus.VALID,
                                    token_expires_at__gt=now,
                                    token_expires_at__lte=now + timedelta(days=days))

    def for_account(self, *account_ids: str) -> "ConnectionQuerySet":
        """Connections a Meta account id names: the WABA, or its Messaging Account."""
        ids = [i for i in account_ids if i]
        return self.filter(Q(waba_id__in=ids) | Q(messaging_account_id__in=ids)) if ids \
            else self.none()

    def live_for_update(self, waba_id: str) -> "Connection | None":
        """The one live connection of a WABA, locked (the caller is in a transaction)."""
        return self.active().select_for_update().filter(waba_id=waba_id).first()

    def live_get_or_create(self, waba_id: str, defaults: dict) -> tuple["Connection", bool]:
        """The one live connection of a WABA, created if needed; safe under concurrent
        deliveries (the partial unique index on live WABAs serializes the creators)."""
        connection = self.live_for_update(waba_id)
        if connection:
            return connection, False
        try:
            with transaction.atomic():
                return self.create(waba_id=waba_id, **defaults), True
        except IntegrityError:
            # Another delivery created it first (the partial unique index serialized us).
            return self.live_for_update(waba_id), False

    def touch(self, now=None) -> int:
        """Records webhook activity, at most once a minute per connection: busy numbers would
        otherwise write the same row on every delivery."""
        now = now or timezone.now()
        return self.filter(
            Q(last_webhook_at__isnull=True) | Q(last_webhook_at__lte=now - Connection.TOUCH_EVERY)
        ).update(last_webhook_at=now)


class Connection(models.Model):
    """A customer's WABA shared with our app; `organization` is empty while it is an orphan."""

    TOUCH_EVERY = timedelta(minutes=1)
    # error_message prefix of an unattributed WABA still awaiting the browser's callback.
    AWAITING_BROWSER = "awaiting_browser"

    class Status(models.TextChoices):
        CONNECTING = "connecting", _("Connecting")
        AWAITING_PHONE_SELECTION = "awaiting_phone_selection", _("Awaiting phone selection")
        CONNECTED = "connected", _("Connected")
        DISCONNECTED = "disconnected", _("Disconnected")
        ERROR = "error", _("Error")

    class OwnerSource(models.TextChoices):
        WEBHOOK = "webhook", _("Meta's signed webhook")
        GRAPH = "graph", _("Graph API with the tenant's token")
        # Stored before the source was recorded: possibly the browser's word, so never used.
        UNPROVEN = "unproven", _("Unproven (stored before it was checked)")

    PROVEN_OWNER_SOURCES = (OwnerSource.WEBHOOK, OwnerSource.GRAPH)

    class TokenStatus(models.TextChoices):
        MISSING = "missing", _("Missing")
        VALID = "valid", _("Valid")
        INVALID = "invalid", _("Invalid")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="whatsapp_connections", verbose_name=_("organization"),
    )
    waba_id = models.CharField(_("WABA id"), max_length=64, db_index=True)
    # Meta's account model (META-PLATFORM.md §0): the WABA splits into a Messaging Account
    # (templates, billing, webhooks; it keeps the old WABA id, so `waba_id` is already one
    # since phase 1) and a WhatsApp Business Account (WAAC, one number). Stored as Meta sends
    # them. `messaging_account_id` only from Meta (signed webhooks, Graph): deliveries
    # addressed to it are this connection's (whatsapp.conversations.routing). `waac_id` as the
    # signup or Meta reported it: for support, it routes nothing (PhoneNumber.waac_id does).
    messaging_account_id = models.CharField(_("Messaging Account id"), max_length=64,
                                            blank=True, db_index=True)
    waac_id = models.CharField(_("WhatsApp Business Account (WAAC) id"), max_length=64,
                               blank=True, db_index=True)
    owner_business_id = models.CharField(_("owner business id"), max_length=64, blank=True,
                                         db_index=True)
    # Where owner_business_id came from. Only Meta proves it (the signed PARTNER_ADDED's
    # waba_info, or Graph asked with the tenant's proven token); only a proven owner may
    # attribute another WABA of that business. Never the browser's businessId (SPEC §8.15).
    owner_business_source = models.CharField(_("owner business source"), max_length=16,
                                             choices=OwnerSource, blank=True)
    # entry.id of PARTNER_ADDED: our own (partner) business portfolio, never the WABA.
    partner_business_id = models.CharField(_("partner business id"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=Status,
                              default=Status.CONNECTING, db_index=True)
    onboarding = models.ForeignKey(
        Onboarding, null=True, blank=True, on_delete=models.SET_NULL, related_name="connections",
        verbose_name=_("onboarding"),
    )
    tracking_code_used = models.UUIDField(_("tracking code used"), null=True, blank=True)
    # How the organization was resolved: tracking_code, browser_callback, waba, owner_business,
    # claim. Empty for orphans.
    attributed_by = models.CharField(_("attributed by"), max_length=32, blank=True)
    business_name = models.CharField(_("business name"), max_length=200, blank=True)
    is_coexistence = models.BooleanField(_("coexistence"), null=True, blank=True)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    token_status = models.CharField(_("token status"), max_length=16, choices=TokenStatus,
                                    default=TokenStatus.MISSING)
    token_expires_at = models.DateTimeField(_("token expires at"), null=True, blank=True)
    token_checked_at = models.DateTimeField(_("token checked at"), null=True, blank=True)
    # Where the token came from: the popup's code exchange, or Hosted ES (system user fetch).
    token_source = models.CharField(_("token source"), max_length=32, blank=True)
    finish_event = models.CharField(_("finish event"), max_length=64, blank=True)
    # The number the browser reported (FINISH carries phone_number_id); chosen automatically.
    requested_phone_number_id = models.CharField(max_length=64, blank=True)
    subscribed_at = models.DateTimeField(_("app subscribed at"), null=True, blank=True)
    # The onboarding pipeline's progress (see whatsapp/pipeline.py): last step reached, its
    # error for support, and a lease so two runs never work on one connection at once.
    pipeline_step = models.CharField(_("pipeline step"), max_length=32, blank=True)
    pipeline_error = models.TextField(_("pipeline error"), blank=True)
    pipeline_locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Automatic retries of a transiently failing step (WHATSAPP_PIPELINE_RETRY_DELAYS): how
    # many were spent, and when the next one runs (the sweep runs it if Celery's is lost).
    pipeline_attempts = models.PositiveSmallIntegerField(_("pipeline attempts"), default=0)
    pipeline_next_attempt_at = models.DateTimeField(_("next pipeline attempt at"), null=True,
                                                    blank=True)
    # Machine code of why the connection is in `error` (whatsapp.onboarding.retries.ERROR_CODES),
    # for the tenant to quote to support; error_message is its pt-BR text.
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    disconnected_at = models.DateTimeField(_("disconnected at"), null=True, blank=True)
    disconnect_reason = models.CharField(_("disconnect reason"), max_length=200, blank=True)
    last_webhook_at = models.DateTimeField(_("last webhook at"), null=True, blank=True)
    # The PARTNER_ADDED delivery that created this row, for support (orphans especially).
    source_event = models.JSONField(_("source event"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_connections"
        ordering = ["-created_at"]
        constraints = [
            # A WABA belongs to at most one live connection; disconnected rows are history.
            models.UniqueConstraint(
                fields=["waba_id"], condition=~Q(status="disconnected"),
                name="uniq_live_connection_per_waba",
            ),
        ]
        verbose_name = _("connection")
        verbose_name_plural = _("connections")
        permissions = [
            ("claim_orphan", _("Can claim an orphan WABA for an organization")),
            ("operate_connection", _("Can re-run token health and the pipeline, and disconnect")),
        ]

    def __str__(self) -> str:
        return f"WABA {self.waba_id} ({self.get_status_display()})"

    @property
    def owner_business_proven(self) -> bool:
        return bool(self.owner_business_id) and (
            self.owner_business_source in self.PROVEN_OWNER_SOURCES)

    def set_owner_business(self, owner_business_id: str, *, source: str) -> bool:
        """Records Meta's word on the WABA's owner business; Meta's value always wins over a
        stored one. Returns True when it replaced a different value."""
        replaced = bool(self.owner_business_id) and self.owner_business_id != owner_business_id
        self.owner_business_id, self.owner_business_source = owner_business_id, source
        return replaced

    def account_ids(self) -> set[str]:
        """The ids Meta addresses this connection's deliveries to (entry.id): its WABA and,
        once Meta names one, its Messaging Account."""
        return {i for i in (self.waba_id, self.messaging_account_id) if i}

    def learn_account_ids(self, *, messaging_account_id: str = "", waac_id: str = "") -> bool:
        """Records the Messaging Account / WAAC ids Meta sent; True when something changed."""
        changed = False
        if messaging_account_id and messaging_account_id != self.messaging_account_id:
            self.messaging_account_id, changed = messaging_account_id, True
        if waac_id and waac_id != self.waac_id:
            self.waac_id, changed = waac_id, True
        return changed

    @property
    def is_orphan(self) -> bool:
        return self.organization_id is None and self.status != self.Status.DISCONNECTED

    def set_access_token(self, raw: str) -> None:
        self.access_token_encrypted = crypto.encrypt(raw)
        self.token_status = self.TokenStatus.VALID

    def store_token(self, token: str, *, source: str, expires_at: int = 0,
                    save: bool = True) -> None:
        """Encrypts and stores a business token; `expires_at` (Meta's epoch seconds) 0 means
        it never expires."""
        self.set_access_token(token)
        self.token_source = source
        self.token_checked_at = timezone.now()
        self.token_expires_at = datetime.fromtimestamp(expires_at, tz=UTC) if expires_at else None
        if save:
            self.save(update_fields=["access_token_encrypted", "token_status", "token_source",
                                     "token_checked_at", "token_expires_at", "updated_at"])

    def get_access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted) if self.access_token_encrypted else ""

    def wipe_credentials(self) -> None:
        self.access_token_encrypted = ""
        self.token_status = self.TokenStatus.MISSING
        self.token_expires_at = None


class OrphanManager(models.Manager):
    def get_queryset(self):
        return ConnectionQuerySet(self.model, using=self._db).orphans()


class OrphanConnection(Connection):
    """The back-office view of connections that no organization could be matched to."""

    objects = OrphanManager()

    class Meta:
        proxy = True
        verbose_name = _("orphan WABA")
        verbose_name_plural = _("orphan WABAs")


class TokenExpiryNotice(models.Model):
    """An e-mail sent to an organization's admins because its token expires within
    `threshold_days`: the durable "sent" marker, so each threshold is mailed once per token."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE,
                                   related_name="token_expiry_notices",
                                   verbose_name=_("connection"))
    threshold_days = models.PositiveSmallIntegerField(_("threshold (days)"))
    # The expiry warned about: a new token (reconnect) with another date is warned again.
    token_expires_at = models.DateTimeField(_("token expires at"))
    recipients = models.PositiveIntegerField(_("recipients"), default=0)
    sent_at = models.DateTimeField(_("sent at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_token_expiry_notices"
        constraints = [
            models.UniqueConstraint(fields=["connection", "threshold_days", "token_expires_at"],
                                    name="uniq_token_expiry_notice"),
        ]
        verbose_name = _("token expiry notice")
        verbose_name_plural = _("token expiry notices")

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.threshold_days} d, {self.token_expires_at:%Y-%m-%d}"
