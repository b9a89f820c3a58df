import json

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from audit.models import AuditLog
from config.admin import ReadOnlyAdmin, ReadOnlyInline
from organizations.models import Organization
from organizations.services import organization_by_id
from whatsapp.backoffice import dashboard, labels
from whatsapp.models import (
    AnalyticsEvent,
    Connection,
    FeatureFlag,
    FeatureFlagOverride,
    Message,
    OrphanConnection,
    PhoneNumber,
    TokenExpiryNotice,
    WebhookLog,
)
from whatsapp.onboarding import connections
from whatsapp.onboarding.reconcile import orphan_suggestions
from whatsapp.onboarding.signup import OnboardingError
from whatsapp.onboarding.token_health import connection_check_token
from whatsapp.webhooks.replay import webhooks_replay

from .coded import coded
from .filters import ConnectionAttentionFilter


class PhoneNumberInline(ReadOnlyInline):
    model = PhoneNumber
    fields = ["phone_number_id", "waac_id", "display_phone_number", "verified_name", "status",
              "quality", "limit", "is_on_biz_app"]
    readonly_fields = ["quality", "limit"]
    quality = coded("quality_rating", labels.QUALITY_RATING, _("quality rating"))
    limit = coded("messaging_limit", labels.MESSAGING_LIMIT, _("messaging limit"))


class TokenExpiryNoticeInline(ReadOnlyInline):
    """The e-mails that warned the organization's admins of the token's expiry."""

    model = TokenExpiryNotice
    fields = ["sent_at", "threshold_days", "token_expires_at", "recipients"]
    readonly_fields = fields
    ordering = ["-sent_at"]


@admin.register(Connection)
class ConnectionAdmin(ReadOnlyAdmin):
    """Per tenant: status, numbers, token health, subscription, sync progress, audit trail."""

    list_display = ["waba_id", "organization", "status", "token_status", "token_expires_at",
                    "is_coexistence", "subscribed", "connected_at", "last_webhook_at"]
    list_filter = [ConnectionAttentionFilter, "status", "token_status", "is_coexistence"]
    search_fields = ["waba_id", "messaging_account_id", "waac_id", "owner_business_id",
                     "organization__name"]
    inlines = [PhoneNumberInline, TokenExpiryNoticeInline]
    actions = ["check_token", "rerun_pipeline", "disconnect_selected"]
    # The token itself is never shown: only whether one is stored and its health.
    readonly_fields = ["organization", "status", "waba_id", "messaging_account_id", "waac_id",
                       "owner_business_id", "owner_business_source", "partner_business_id",
                       "business_name", "is_coexistence", "signup_event",
                       "onboarding", "tracking_code_used", "attribution", "has_token",
                       "token_origin", "token_status", "token_expires_at", "token_checked_at",
                       "subscribed_at", "step", "pipeline_error", "sync_progress",
                       "connected_at", "disconnected_at", "disconnection_reason",
                       "last_webhook_at", "error_message", "recent_audit", "created_at",
                       "updated_at"]
    fieldsets = [
        (None, {"fields": ["organization", "status", "waba_id", "messaging_account_id",
                           "waac_id", "owner_business_id", "owner_business_source",
                           "partner_business_id", "business_name", "is_coexistence",
                           "signup_event", "error_message"]}),
        (_("Token"), {"fields": ["has_token", "token_origin", "token_status",
                                 "token_expires_at", "token_checked_at"]}),
        (_("Onboarding pipeline"), {"fields": ["onboarding", "tracking_code_used",
                                               "attribution", "subscribed_at",
                                               "step", "pipeline_error",
                                               "sync_progress"]}),
        (_("History"), {"fields": ["connected_at", "disconnected_at", "disconnection_reason",
                                   "last_webhook_at", "recent_audit", "created_at",
                                   "updated_at"]}),
    ]

    signup_event = coded("finish_event", labels.SIGNUP_EVENT, _("finish event"))
    attribution = coded("attributed_by", labels.ATTRIBUTED_BY, _("attributed by"))
    token_origin = coded("token_source", labels.TOKEN_SOURCE, _("token source"))
    step = coded("pipeline_step", labels.PIPELINE_STEP, _("pipeline step"))

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.operate_connection")

    @admin.display(description=_("disconnect reason"))
    def disconnection_reason(self, obj: Connection) -> str:
        return labels.disconnect_reason(obj.disconnect_reason)

    @admin.display(description=_("token stored"), boolean=True)
    def has_token(self, obj: Connection) -> bool:
        return bool(obj.access_token_encrypted)

    @admin.display(description=_("app subscribed"), boolean=True)
    def subscribed(self, obj: Connection) -> bool:
        return obj.subscribed_at is not None

    @admin.display(description=_("sync progress"))
    def sync_progress(self, obj: Connection) -> str:
        rows = format_html_join("", "<li>{} — {}: {} · {}: {} · {}: {}{}</li>", (
            (c.display_phone_number or c.phone_number_id,
             _("registration"), c.get_registration_status_display(),
             _("contacts"), c.get_contacts_sync_status_display(),
             _("history"), c.get_history_sync_status_display(),
             format_html(" <em>({})</em>", c.sync_error) if c.sync_error else "")
            for c in obj.phone_numbers.all()
        ))
        return format_html("<ul>{}</ul>", rows) if rows else "—"

    @admin.display(description=_("recent audit entries"))
    def recent_audit(self, obj: Connection) -> str:
        entries = AuditLog.objects.filter(target=f"waba:{obj.waba_id}")[:10]
        rows = format_html_join("", "<li>{} · {} · {}</li>", (
            (date_format(timezone.localtime(e.created_at), "DATETIME_FORMAT"),
             e.get_action_display(), e.actor_label)
            for e in entries
        ))
        return format_html("<ul>{}</ul>", rows) if rows else "—"

    @admin.action(description=_("Re-run token health check"), permissions=["operate"])
    def check_token(self, request, queryset) -> None:
        for connection in queryset.active():
            check = connection_check_token(connection)
            self.message_user(request, f"{connection.waba_id}: {check.result}"
                              + (f" ({check.detail})" if check.detail else ""))

    @admin.action(description=_("Resume the onboarding pipeline"), permissions=["operate"])
    def rerun_pipeline(self, request, queryset) -> None:
        """Same room function as everywhere (connections.pipeline_resume): audited with the
        staff user; refuses, per row, what cannot be resumed."""
        resumed = []
        for connection in queryset:
            try:
                connections.pipeline_resume(connection_id=connection.pk, actor=request.user,
                                            request=request)
            except OnboardingError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                resumed.append(connection.waba_id)
        if resumed:
            self.message_user(request, _(
                "Pipeline resumed for %(n)d connection(s): %(wabas)s. It runs in the "
                "background; this page shows its progress.")
                % {"n": len(resumed), "wabas": ", ".join(resumed)})

    @admin.action(description=_("Disconnect selected connections"), permissions=["operate"])
    def disconnect_selected(self, request, queryset):
        """Asks for confirmation first (Django's intermediate page pattern)."""
        live = queryset.active()
        if request.POST.get("confirm") == "1":
            for connection in live:
                connections.connection_disconnect(
                    waba_id=connection.waba_id, reason="support: " + (
                        request.POST.get("reason") or "disconnected by support"),
                    actor=request.user, request=request)
            self.message_user(request, _("%(n)d connection(s) disconnected.") % {"n": len(live)})
            return None
        context = {**self.admin_site.each_context(request), "title": _("Disconnect?"),
                   "connections": live, "action": "disconnect_selected",
                   "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)}
        return TemplateResponse(request, "admin/whatsapp/confirm_disconnect.html", context)


@admin.register(OrphanConnection)
class OrphanConnectionAdmin(ConnectionAdmin):
    """WABAs that arrived without a matching organization, waiting for support to claim.
    Their page is the connection page (same fields, in words); the action is the claim."""

    list_display = ["waba_id", "owner_business_id", "created_at", "claim_link"]
    list_filter = []
    search_fields = ["waba_id", "owner_business_id"]
    ordering = ["-created_at"]
    actions = []

    @admin.display(description=_("action"))
    def claim_link(self, obj: Connection) -> str:
        url = reverse("admin:whatsapp_orphanconnection_claim", args=[obj.pk])
        return format_html('<a class="underline font-semibold" href="{}">{}</a>', url,
                           _("Claim"))

    def get_urls(self):
        claim = self.admin_site.admin_view(self.claim_view)
        return [path("<uuid:pk>/claim/", claim, name="whatsapp_orphanconnection_claim"),
                *super().get_urls()]

    def claim_view(self, request, pk):
        """Two steps: choose the organization, then confirm what will happen."""
        if not request.user.has_perm("whatsapp.claim_orphan"):
            raise PermissionDenied
        connection = get_object_or_404(OrphanConnection, pk=pk)
        back_url = reverse("admin:whatsapp_orphanconnection_changelist")
        organization = None
        if request.method == "POST":
            # A suggested organization's button, or the one chosen in the list.
            organization = organization_by_id(request.POST.get("suggested")
                                              or request.POST.get("organization", ""))
            if organization and request.POST.get("confirm") == "1":
                try:
                    connections.connection_claim(connection_id=connection.pk,
                                              organization=organization, actor=request.user,
                                              request=request)
                except OnboardingError as exc:
                    self.message_user(request, exc.message, level=messages.ERROR)
                    return redirect(back_url)
                self.message_user(request, _("WABA %(waba)s claimed for %(org)s.")
                                  % {"waba": connection.waba_id, "org": organization.name})
                return redirect(reverse("admin:whatsapp_connection_change",
                                        args=[connection.pk]))
        event = json.dumps(connection.source_event, indent=2, ensure_ascii=False) \
            if connection.source_event else ""
        context = {
            **self.admin_site.each_context(request),
            "title": _("Claim orphan WABA %(waba)s") % {"waba": connection.waba_id},
            "connection": connection, "organization": organization, "event_json": event,
            "organizations": Organization.objects.order_by("name"), "back_url": back_url,
            "suggestions": orphan_suggestions(connection),
        }
        return TemplateResponse(request, "admin/whatsapp/claim_orphan.html", context)


@admin.register(TokenExpiryNotice)
class TokenExpiryNoticeAdmin(ReadOnlyAdmin):
    """Which organization was warned, for which connection, of which expiry, when (never the
    token: the notice only knows its expiry date)."""

    list_display = ["sent_at", "organization", "connection", "numbers", "threshold_days",
                    "token_expires_at", "recipients"]
    list_filter = ["threshold_days", "connection__organization"]
    search_fields = ["connection__waba_id", "connection__organization__name"]
    date_hierarchy = "sent_at"
    list_select_related = ["connection__organization"]
    fields = ["organization", "connection", "numbers", "threshold_days", "token_expires_at",
              "recipients", "sent_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("connection__phone_numbers")

    @admin.display(description=_("organization"), ordering="connection__organization__name")
    def organization(self, obj: TokenExpiryNotice):
        return obj.connection.organization or "—"

    @admin.display(description=_("phone numbers"))
    def numbers(self, obj: TokenExpiryNotice) -> str:
        return ", ".join(map(str, obj.connection.phone_numbers.all())) or "—"


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["wamid", "organization", "contact", "direction", "origin", "kind",
                    "meta_status", "timestamp"]
    list_filter = ["direction"]
    search_fields = ["wamid", "contact__wa_id", "contact__user_id"]
    exclude = ["source", "type", "status"]
    readonly_fields = ["origin", "kind", "meta_status"]
    meta_status = coded("status", labels.MESSAGE_STATUS, _("status"))
    origin = coded("source", dict(Message.Source.choices), _("source"))
    kind = coded("type", labels.MESSAGE_TYPE, _("type"))


@admin.register(WebhookLog)
class WebhookLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "status", "fields", "organization", "attempts",
                    "next_attempt_at", "parked_phone_number_id", "last_error"]
    list_filter = ["status", "received_at"]
    # Raw rows stay read-only; the one thing support may do is replay (same code as the command).
    actions = ["replay_selected"]
    search_fields = ["id", "=body_sha256", "last_error", "parked_phone_number_id"]
    date_hierarchy = "received_at"
    readonly_fields = ["received_at", "status", "fields", "organization", "attempts",
                       "next_attempt_at", "processed_at", "parked_phone_number_id",
                       "signature_valid", "body_sha256", "body_purged_at",
                       "headers", "last_error", "traceback", "pretty_body"]
    fields = readonly_fields

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.replay_webhooklog")

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", dashboard, name="whatsapp_webhooklog_dashboard"),
                *super().get_urls()]

    def dashboard_view(self, request):
        """Seed 002 §2.3: failed deliveries by error, field and organization; oldest's age."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        summary = dashboard.failed_webhooks()
        changelist = reverse("admin:whatsapp_webhooklog_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Failed webhooks"),
            "summary": summary,
            "failed_link": f"{changelist}?status__exact=failed",
            "dead_link": f"{changelist}?status__exact=dead",
            "by_error": {"headers": [_("Error"), _("Deliveries")], "rows": summary["by_error"]},
            "by_field": {"headers": [_("Field"), _("Deliveries")], "rows": summary["by_field"]},
            "by_org": {"headers": [_("Organization"), _("Deliveries")],
                       "rows": summary["by_organization"]},
        }
        return TemplateResponse(request, "admin/whatsapp/failed_webhooks.html", context)

    @admin.action(description=_("Replay selected deliveries"), permissions=["replay"])
    def replay_selected(self, request, queryset) -> None:
        result = webhooks_replay(logs=queryset, actor=request.user, request=request)
        self.message_user(request, _("%(n)d deliveries queued for replay.")
                          % {"n": len(result.replayed)})
        if result.skipped_in_progress:
            self.message_user(
                request, _("%(n)d deliveries are being processed right now and were skipped.")
                % {"n": len(result.skipped_in_progress)}, level=messages.WARNING)
        if result.skipped_purged:
            self.message_user(
                request, _("%(n)d deliveries cannot be replayed: their raw body was removed by "
                           "the retention (after %(days)d days). Ids: %(ids)s")
                % {"n": len(result.skipped_purged), "ids": ", ".join(
                    map(str, result.skipped_purged[:50])),
                   "days": settings.WHATSAPP_WEBHOOK_RETENTION_DAYS}, level=messages.ERROR)

    @admin.display(description=_("body"))
    def pretty_body(self, obj: WebhookLog) -> str:
        if obj.raw_body is None:
            return _("Removed on %(date)s by the retention; the SHA-256 above identifies it.") % {
                "date": date_format(timezone.localtime(obj.body_purged_at), "DATETIME_FORMAT")
                if obj.body_purged_at else "?"}
        raw = bytes(obj.raw_body)
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            text = raw.decode("utf-8", errors="replace")
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)


class FeatureFlagOverrideInline(TabularInline):
    model = FeatureFlagOverride
    extra = 0
    autocomplete_fields = ["organization"]


@admin.register(FeatureFlag)
class FeatureFlagAdmin(ModelAdmin):
    list_display = ["name", "kill_switch", "rollout_percentage", "updated_at"]
    search_fields = ["name"]
    inlines = [FeatureFlagOverrideInline]


@admin.register(AnalyticsEvent)
class AnalyticsEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "name", "organization", "properties", "forwarded_at"]
    list_filter = ["name"]
    date_hierarchy = "created_at"


# Sending (templates, policies, outbound queue) and ingestion (leads, statuses, history sync,
# template events) live in their own modules.
