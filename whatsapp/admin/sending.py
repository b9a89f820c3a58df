"""Admin for sending: templates (only their use is editable), per-organization sending
policies, and the outbound queue as a read-only audit trail. Imported by whatsapp/admin.py."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from whatsapp.backoffice import labels
from whatsapp.models import Connection, MessageTemplate, OutboundEvent, OutboundMessage, SendPolicy
from whatsapp.tasks import sync_templates

from .coded import coded
from .filters import PeriodFilter


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ModelAdmin):
    list_display = ["name", "language", "organization", "template_status", "template_category",
                    "use", "body_parameter_count", "status_at", "synced_at"]
    list_filter = ["language"]
    search_fields = ["name", "waba_id", "template_id", "organization__name"]
    # Meta owns everything but the mapping to a use.
    readonly_fields = ["organization", "connection", "waba_id", "template_id", "name",
                       "language", "template_category", "template_status", "status_at",
                       "status_reason",
                       "components", "body_parameter_count", "header_parameter_count",
                       "synced_at", "created_at", "updated_at"]
    fields = ["use", *readonly_fields]
    actions = ["resync_selected"]
    template_status = coded("status", labels.TEMPLATE_STATUS, _("status"))
    template_category = coded("category", labels.TEMPLATE_CATEGORY, _("category"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Sync the templates of these WhatsApp accounts from Meta"))
    def resync_selected(self, request, queryset) -> None:
        waba_ids = set(queryset.values_list("waba_id", flat=True))
        connections = Connection.objects.filter(waba_id__in=waba_ids,
                                                status=Connection.Status.CONNECTED)
        for connection in connections:
            sync_templates.delay(str(connection.pk))
        self.message_user(request, _("%(n)d accounts queued for a template sync.")
                          % {"n": len(connections)}, level=messages.INFO)


@admin.register(SendPolicy)
class SendPolicyAdmin(ModelAdmin):
    list_display = ["organization", "mode", "updated_at"]
    list_filter = ["mode"]
    search_fields = ["organization__name"]
    autocomplete_fields = ["organization"]


class OutboundEventInline(ReadOnlyInline):
    model = OutboundEvent
    fields = ["at", "what", "detail"]
    readonly_fields = ["what"]
    what = coded("event", labels.OUTBOUND_EVENT, _("event"))


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "to", "kind", "template_name", "status",
                    "automated", "actor", "wamid", "attempts", "error_code"]
    list_filter = ["status", "kind", "automated", "actor", PeriodFilter, "organization"]
    search_fields = ["id", "wamid", "to", "idempotency_key", "organization__name"]
    date_hierarchy = "created_at"
    inlines = [OutboundEventInline]
    readonly_fields = ["id", "organization", "config", "contact", "to", "kind", "template",
                       "template_name", "template_language", "use", "parameters", "text",
                       "automated", "idempotency_key", "status", "status_reason", "actor",
                       "queued_by_user", "queued_by_token", "payload", "response", "wamid",
                       "attempts", "next_attempt_at", "error_code", "errors",
                       "graph_called_at", "accepted_at", "sent_at", "delivered_at", "read_at",
                       "failed_at", "created_at", "updated_at"]
    fields = readonly_fields
