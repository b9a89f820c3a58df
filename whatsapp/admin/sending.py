"""Admin for sending: templates (only their use is editable), per-organization sending
policies, and the outbound queue as a read-only audit trail. Imported by whatsapp/admin.py."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from whatsapp.backoffice import labels
from whatsapp.models import Connection, MessageTemplate, OutboundEvent, OutboundMessage, SendPolicy
from whatsapp.sending.template_events import template_category_confirm
from whatsapp.tasks import sync_templates

from .coded import coded
from .filters import PeriodFilter


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ModelAdmin):
    list_display = ["name", "language", "organization", "template_status", "template_category",
                    "category_confirmation_required", "quality", "use",
                    "body_parameter_count", "status_at", "synced_at"]
    list_filter = ["category_confirmation_required", "language"]
    search_fields = ["name", "waba_id", "template_id", "organization__name"]
    # Meta owns everything but the mapping to a use (and confirming a new category).
    readonly_fields = ["organization", "connection", "waba_id", "template_id", "name",
                       "language", "template_category", "previous", "category_changed_at",
                       "category_confirmation_required", "category_confirmed_at",
                       "category_confirmed_by", "upcoming", "upcoming_category_at",
                       "template_status", "status_at", "status_reason", "quality",
                       "quality_score_at", "parameter_format", "components",
                       "body_parameter_count", "header_parameter_count",
                       "synced_at", "created_at", "updated_at"]
    fields = ["use", *readonly_fields]
    actions = ["resync_selected", "confirm_category"]
    template_status = coded("status", labels.TEMPLATE_STATUS, _("status"))
    template_category = coded("category", labels.TEMPLATE_CATEGORY, _("category"))
    previous = coded("previous_category", labels.TEMPLATE_CATEGORY, _("previous category"))
    upcoming = coded("upcoming_category", labels.TEMPLATE_CATEGORY, _("upcoming category"))
    quality = coded("quality_score", labels.QUALITY_RATING, _("quality score"))

    def has_confirm_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.confirm_template_category")

    @admin.action(description=_("Confirm new category"), permissions=["confirm"])
    def confirm_category(self, request, queryset) -> None:
        """Meta moved these templates to another category (e.g. MARKETING): a person accepts
        it, and automation may send them again."""
        confirmed = [t for t in queryset if template_category_confirm(template_id=t.pk,
                                                                      user=request.user)]
        if confirmed:
            self.message_user(request, _("New category confirmed for %(names)s: automated "
                                         "sends may use them again.")
                              % {"names": ", ".join(str(t) for t in confirmed)})
        skipped = queryset.count() - len(confirmed)
        if skipped:
            self.message_user(request, _("%(n)d template(s) had no category change waiting "
                                         "for confirmation.") % {"n": skipped},
                              level=messages.WARNING)

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
