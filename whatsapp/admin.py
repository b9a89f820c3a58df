import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from .models import Config, Connection, Message, Onboarding, WebhookLog


class ReadOnlyAdmin(ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Onboarding)
class OnboardingAdmin(ReadOnlyAdmin):
    list_display = ["tracking_code", "organization", "status", "created_at", "expires_at",
                    "completed_at", "waba_id"]
    list_filter = ["status", "organization"]
    search_fields = ["tracking_code", "waba_id", "organization__name"]
    date_hierarchy = "created_at"


class ConfigInline(TabularInline):
    model = Config
    extra = 0
    fields = ["phone_number_id", "display_phone_number", "verified_name", "status",
              "quality_rating", "is_on_biz_app"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Connection)
class ConnectionAdmin(ModelAdmin):
    list_display = ["waba_id", "organization", "status", "token_status", "token_expires_at",
                    "is_coexistence", "connected_at", "last_webhook_at"]
    list_filter = ["status", "token_status", "is_coexistence"]
    search_fields = ["waba_id", "owner_business_id", "organization__name"]
    inlines = [ConfigInline]
    # The token itself is never shown: only whether one is stored and its health.
    readonly_fields = ["waba_id", "owner_business_id", "partner_business_id", "onboarding",
                       "tracking_code_used", "attributed_by", "token_status",
                       "token_expires_at", "token_checked_at", "has_token", "connected_at",
                       "disconnected_at", "disconnect_reason", "last_webhook_at", "created_at",
                       "updated_at", "status", "organization", "error_message",
                       "is_coexistence", "business_name"]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("token stored"), boolean=True)
    def has_token(self, obj: Connection) -> bool:
        return bool(obj.access_token_encrypted)


@admin.register(Config)
class ConfigAdmin(ReadOnlyAdmin):
    list_display = ["display_phone_number", "phone_number_id", "organization", "status",
                    "quality_rating", "is_on_biz_app"]
    list_filter = ["status", "is_on_biz_app", "quality_rating"]
    search_fields = ["phone_number_id", "display_phone_number", "organization__name"]
    exclude = ["registration_pin_encrypted"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["wamid", "organization", "direction", "source", "type", "status", "timestamp"]
    list_filter = ["direction", "source", "type", "status"]
    search_fields = ["wamid"]


@admin.register(WebhookLog)
class WebhookLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "status", "fields", "organization", "attempts",
                    "next_attempt_at", "last_error"]
    list_filter = ["status", "received_at"]
    # Raw rows stay read-only; the one thing support may do is replay (same code as the command).
    actions = ["replay_selected"]
    search_fields = ["id", "body_sha256", "last_error"]
    date_hierarchy = "received_at"
    readonly_fields = ["received_at", "status", "fields", "organization", "attempts",
                       "next_attempt_at", "processed_at", "signature_valid", "body_sha256",
                       "headers", "last_error", "traceback", "pretty_body"]
    fields = readonly_fields

    def has_replay_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description=_("Replay selected deliveries"), permissions=["replay"])
    def replay_selected(self, request, queryset) -> None:
        from .reliability import webhooks_replay

        result = webhooks_replay(logs=queryset, actor=request.user, request=request)
        self.message_user(request, _("%(n)d deliveries queued for replay.")
                          % {"n": len(result.replayed)})
        if result.skipped_in_progress:
            self.message_user(
                request, _("%(n)d deliveries are being processed right now and were skipped.")
                % {"n": len(result.skipped_in_progress)}, level=messages.WARNING)

    @admin.display(description=_("body"))
    def pretty_body(self, obj: WebhookLog) -> str:
        raw = bytes(obj.raw_body)
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            text = raw.decode("utf-8", errors="replace")
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)
