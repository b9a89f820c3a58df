"""Lead events (the outbox the assistant reads): read-only, with one action, replaying dead
events (the same code as `manage.py replay_lead_events`)."""

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdmin
from whatsapp.events.delivery import replay
from whatsapp.models import LeadEvent


@admin.register(LeadEvent)
class LeadEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "type", "organization", "stream", "sequence", "delivery",
                    "attempts", "next_attempt_at", "last_error"]
    list_filter = ["delivery", "type", "created_at"]
    search_fields = ["=id", "stream", "type"]
    date_hierarchy = "created_at"
    actions = ["replay_selected"]
    readonly_fields = ["id", "type", "organization", "stream", "sequence", "contact",
                       "occurred_at", "created_at", "delivery", "attempts", "next_attempt_at",
                       "delivered_at", "last_error", "fanned_out", "pretty_data"]
    fields = readonly_fields

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.replay_leadevent")

    @admin.action(description=_("Replay selected dead lead events"), permissions=["replay"])
    def replay_selected(self, request, queryset) -> None:
        count = replay(queryset)
        self.message_user(request, _("%(n)d dead lead events queued for delivery again; events "
                                     "that were not dead were left as they are.") % {"n": count})

    @admin.display(description=_("data"))
    def pretty_data(self, obj: LeadEvent) -> str:
        text = json.dumps(obj.data, indent=2, ensure_ascii=False)
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)
