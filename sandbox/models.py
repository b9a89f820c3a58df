"""What the sandbox holds (Meta's side of the world) and what it sent. Tables are `sandbox_*`.

The state lives in the database, not in memory, because the sandbox is reached from several
threads (runserver, the live test server, the background delivery threads) and must look the
same to all of them.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .ids import mask

DEFAULT_RETRY_DELAYS = [2, 4, 8, 16, 30]  # 6 tries over ~1 min (Meta: up to 7 days)
# The app-level webhook fields of the WhatsApp Business Account object (App Dashboard ›
# WhatsApp › Configuration), as `GET /{app_id}/subscriptions` lists them: every field the
# sandbox sends, ticked (META-PLATFORM.md §3, §4).
DEFAULT_APP_FIELDS = [
    "account_update", "messages", "history", "smb_app_state_sync", "smb_message_echoes",
    "message_template_status_update", "phone_number_quality_update",
    "template_category_update", "message_template_quality_update",
]


# Embedded Signup versions Meta still runs, and the feature type that selects coexistence.
CURRENT_ES_VERSIONS = ("v4", "v4-public-preview")
COEXISTENCE_FEATURE = "whatsapp_business_app_onboarding"


def default_app_fields() -> list[str]:
    return list(DEFAULT_APP_FIELDS)


class Switches(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """One row of run-time switches, changed over HTTP by tests and on the listing page."""

    webhook_url = models.CharField(max_length=500, blank=True)  # blank: SANDBOX_WEBHOOK_URL
    # Real Meta never echoes it (META-PLATFORM.md §1.6); the seeds expect it.
    echo_tracking_code = models.BooleanField(default=False)
    duplicate = models.BooleanField(default=False)
    reorder = models.BooleanField(default=False)
    batch = models.BooleanField(default=False)
    token_expires_in = models.PositiveIntegerField(default=0)  # seconds; 0 = never expires
    require_appsecret_proof = models.BooleanField(default=False)
    app_installed_delay_ms = models.PositiveIntegerField(default=2000)
    event_gap_ms = models.PositiveIntegerField(default=300)
    retry_delays = models.JSONField(default=list)
    # Fields ticked for the app (a test unticks one to see the product's self-check fail).
    app_fields = models.JSONField(default=default_app_fields)

    @classmethod
    def get(cls) -> "Switches":
        row, _ = cls.objects.get_or_create(pk=1, defaults={"retry_delays": DEFAULT_RETRY_DELAYS})
        return row

    @property
    def target_url(self) -> str:
        return self.webhook_url or settings.SANDBOX_WEBHOOK_URL

    def as_dict(self) -> dict:
        return {
            "webhook_url": self.target_url,
            "echo_tracking_code": self.echo_tracking_code,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "batch": self.batch,
            "token_expires_in": self.token_expires_in,
            "require_appsecret_proof": self.require_appsecret_proof,
            "app_installed_delay_ms": self.app_installed_delay_ms,
            "event_gap_ms": self.event_gap_ms,
            "retry_delays": self.retry_delays,
            "app_fields": self.app_fields,
        }


class Business(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """A customer's business portfolio (owner_business_id)."""

    id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)


class Waba(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    id = models.CharField(primary_key=True, max_length=32)
    business = models.ForeignKey(Business, on_delete=models.CASCADE, related_name="wabas")
    name = models.CharField(max_length=200)
    # Shared with the partner (PARTNER_ADDED); false after PARTNER_REMOVED.
    shared = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Phone(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    id = models.CharField(primary_key=True, max_length=32)
    waba = models.ForeignKey(Waba, on_delete=models.CASCADE, related_name="phones")
    display_phone_number = models.CharField(max_length=32)  # "+55 11 94000-1234"
    verified_name = models.CharField(max_length=200)
    is_on_biz_app = models.BooleanField(default=False)
    platform_type = models.CharField(max_length=32, default="CLOUD_API")
    code_verification_status = models.CharField(max_length=32, default="VERIFIED")
    quality_rating = models.CharField(max_length=16, default="GREEN")
    throughput_level = models.CharField(max_length=16, default="STANDARD")
    registered = models.BooleanField(default=False)
    pin_sha256 = models.CharField(max_length=64, blank=True)  # never the PIN itself
    # Coexistence: did the business agree to share chat history in the signup?
    share_history = models.BooleanField(default=True)
    contacts_request_id = models.CharField(max_length=64, blank=True)
    history_request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def digits(self) -> str:
        """The number as webhooks carry it in metadata.display_phone_number."""
        return "".join(ch for ch in self.display_phone_number if ch.isdigit())


class RegisterCall(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """Every POST /{phone}/register, for the 10-per-72-h limit (error 133016)."""

    phone = models.ForeignKey(Phone, on_delete=models.CASCADE, related_name="register_calls")
    at = models.DateTimeField(default=timezone.now)
    result = models.CharField(max_length=64)

    @classmethod
    def recent_count(cls, phone: Phone) -> int:
        return cls.objects.filter(phone=phone, at__gte=timezone.now() - timedelta(hours=72)).count()


class Token(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """A business token (Business Integration System User), as oauth/access_token returns it."""

    token = models.CharField(max_length=255, unique=True)
    business = models.ForeignKey(Business, on_delete=models.CASCADE, related_name="tokens")
    waba_ids = models.JSONField(default=list)
    user_id = models.CharField(max_length=32)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # null: never
    revoked = models.BooleanField(default=False)

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def masked(self) -> str:
        return mask(self.token)


class AuthCode(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """The Embedded Signup `code`: single use, 30 seconds of life (META-PLATFORM.md §1.2)."""

    LIFETIME = timedelta(seconds=30)

    code = models.CharField(max_length=255, unique=True)
    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="codes")
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def redeem(self) -> bool:
        """Marks the code used; False when someone else used it first (conditional update)."""
        used = AuthCode.objects.filter(pk=self.pk, used_at=None).update(used_at=timezone.now())
        return bool(used)

    @property
    def expired(self) -> bool:
        return self.created_at + self.LIFETIME <= timezone.now()


class Subscription(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """`POST /{waba}/subscribed_apps`: without it no webhooks but account_update arrive."""

    waba = models.OneToOneField(Waba, on_delete=models.CASCADE, related_name="subscription")
    override_callback_uri = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class SentMessage(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """`POST /{phone}/messages` calls the product made."""

    wamid = models.CharField(max_length=255, unique=True)
    phone = models.ForeignKey(Phone, on_delete=models.CASCADE, related_name="sent_messages")
    to = models.CharField(max_length=64)
    type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)


class Signup(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """One walk through the signup pages (popup or hosted link)."""

    class Flow(models.TextChoices):
        POPUP = "popup"
        HOSTED = "hosted"

    session_id = models.CharField(max_length=32, unique=True)
    flow = models.CharField(max_length=10, choices=Flow)
    app_id = models.CharField(max_length=64)
    config_id = models.CharField(max_length=64)
    extras = models.JSONField(default=dict)
    origin = models.CharField(max_length=300, blank=True)  # the opener's origin (popup)
    step = models.CharField(max_length=40, default="business")
    status = models.CharField(max_length=16, default="open")  # open, finished, cancelled, error
    choices = models.JSONField(default=dict)
    result = models.JSONField(default=dict)  # ids created and the message posted
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def tracking_code(self) -> str:
        info = self.extras.get("sessionInfo") if isinstance(self.extras, dict) else None
        return str(info.get("trackingCode", "")) if isinstance(info, dict) else ""

    @property
    def feature_type(self) -> str:
        return str(self.extras.get("featureType", "")) if isinstance(self.extras, dict) else ""

    @property
    def es_version(self) -> str:
        """The Embedded Signup version the launch asked for: `extras.version` names v2/v3 and
        the previews; without it, the login configuration's v4 (whose `extras` may be empty,
        or carry Meta's coexistence-guide `sessionInfoVersion`; META-PLATFORM.md §0, §1.1)."""
        extras = self.extras if isinstance(self.extras, dict) else {}
        return str(extras.get("version") or "v4")

    @property
    def es_retired(self) -> bool:
        """v2, v3 and their previews were retired on 2026-10-15 (§0)."""
        return self.es_version not in CURRENT_ES_VERSIONS

    @property
    def offers_coexistence(self) -> bool:
        """As Meta now does: the WhatsApp Business app (coexistence) option only on a v4 launch
        with `featureType: whatsapp_business_app_onboarding`; a retired-version launch, or v4
        without the feature type, gets the Cloud API (new number) flow only."""
        return not self.es_retired and self.feature_type == COEXISTENCE_FEATURE


class Delivery(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """One webhook request body the sandbox sent (or dropped), with its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pendente"
        DELIVERED = "delivered", "Entregue (200)"
        RETRYING = "retrying", "Tentando de novo"
        FAILED = "failed", "Desistiu após a última tentativa"
        # The app is not subscribed to the WABA: Meta would not send it at all.
        DROPPED = "dropped", "Descartado (app não inscrito na WABA)"

    kinds = models.JSONField(default=list)
    fields = models.JSONField(default=list)
    url = models.CharField(max_length=500)
    body = models.BinaryField()
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Attempt(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)  # null: no HTTP answer
    latency_ms = models.PositiveIntegerField(default=0)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]


class FaultQuerySet(models.QuerySet):
    def live(self) -> "FaultQuerySet":
        return self.filter(Q(remaining=None) | Q(remaining__gt=0))


class Fault(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """A Graph API failure to inject: matching calls get this status/error or this delay."""

    path = models.CharField(max_length=300)  # regex searched in the request path
    method = models.CharField(max_length=10, blank=True)  # blank: any
    status = models.PositiveIntegerField(null=True, blank=True)  # null: delay only
    code = models.IntegerField(null=True, blank=True)
    error_subcode = models.IntegerField(null=True, blank=True)
    message = models.CharField(max_length=300, blank=True)
    delay_ms = models.PositiveIntegerField(default=0)
    remaining = models.PositiveIntegerField(null=True, blank=True)  # null: every call
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FaultQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def take(self) -> bool:
        """Uses one of the fault's `times`; False if another call used the last one."""
        qs = Fault.objects.filter(pk=self.pk)
        if self.remaining is not None:
            qs = qs.filter(remaining__gt=0)
            return bool(qs.update(remaining=F("remaining") - 1, hits=F("hits") + 1))
        return bool(qs.update(hits=F("hits") + 1))


class Media(models.Model):  # noqa: DJ008 (no admin; pages render fields)
    """A media file a user "sent" (inbound image events): `GET /{media-id}` gives a url that
    expires, and the url gives the bytes, both only with a token covering the WABA."""

    id = models.CharField(primary_key=True, max_length=32)
    waba = models.ForeignKey(Waba, on_delete=models.CASCADE, related_name="media")
    mime_type = models.CharField(max_length=128)
    content = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
