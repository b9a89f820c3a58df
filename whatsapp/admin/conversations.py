"""Admin for what webhook ingestion stores: leads, statuses, history sync, template events.

Read-only: these rows come from Meta's webhooks; support looks, never edits.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from whatsapp.backoffice import labels
from whatsapp.models import (
    Contact,
    ContactIdentity,
    HistoryChunk,
    HistorySync,
    MessageStatus,
    TemplateStatusEvent,
)

from .coded import coded
from .privacy import LeadPrivacyActions


class ContactIdentityInline(ReadOnlyInline):
    model = ContactIdentity
    fields = ["kind", "value", "first_seen_at", "superseded_at"]


@admin.register(Contact)
class ContactAdmin(LeadPrivacyActions, ReadOnlyAdmin):
    list_display = ["__str__", "organization", "wa_id", "user_id", "last_inbound_at",
                    "human_takeover_at", "handed_back_at", "in_address_book", "has_referral"]
    list_filter = ["in_address_book", "organization"]
    search_fields = ["user_id", "wa_id", "username", "profile_name", "saved_name",
                     "identities__value"]
    inlines = [ContactIdentityInline]

    @admin.display(description=_("from an ad"), boolean=True)
    def has_referral(self, obj: Contact) -> bool:
        return obj.referral is not None


@admin.register(MessageStatus)
class MessageStatusAdmin(ReadOnlyAdmin):
    list_display = ["wamid", "meta_status", "timestamp", "organization", "recipient_id",
                    "recipient_user_id"]
    exclude = ["status"]
    readonly_fields = ["meta_status"]
    meta_status = coded("status", labels.MESSAGE_STATUS, _("status"))
    search_fields = ["wamid", "recipient_id", "recipient_user_id", "biz_opaque_callback_data"]
    date_hierarchy = "timestamp"


@admin.register(HistorySync)
class HistorySyncAdmin(ReadOnlyAdmin):
    list_display = ["config", "status", "progress", "phase", "chunks_received",
                    "messages_imported", "error_code", "updated_at"]
    list_filter = ["status"]
    search_fields = ["config__phone_number_id", "config__display_phone_number"]


@admin.register(HistoryChunk)
class HistoryChunkAdmin(ReadOnlyAdmin):
    list_display = ["phone_number_id", "phase", "chunk_order", "progress", "message_count",
                    "received_at"]
    search_fields = ["phone_number_id"]


@admin.register(TemplateStatusEvent)
class TemplateStatusEventAdmin(ReadOnlyAdmin):
    list_display = ["template_name", "language", "template_event", "reason", "template_category",
                    "organization", "event_at"]
    exclude = ["event", "category"]
    readonly_fields = ["template_event", "template_category"]
    template_event = coded("event", labels.TEMPLATE_STATUS, _("event"))
    template_category = coded("category", labels.TEMPLATE_CATEGORY, _("category"))
    search_fields = ["template_name", "template_id", "waba_id"]
