"""Admin for what webhook ingestion stores: leads, statuses, history sync, template events,
messages' media.

Read-only: these rows come from Meta's webhooks; support looks, never edits (the one action on
media asks again for a failed download, through the room's function, audited).
"""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from whatsapp.backoffice import labels
from whatsapp.conversations.media import media_retry
from whatsapp.models import (
    Contact,
    ContactIdentity,
    HistoryChunk,
    HistorySync,
    MessageMedia,
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


@admin.register(MessageMedia)
class MessageMediaAdmin(ReadOnlyAdmin):
    """Each message's media copy: where its download stands and why it failed. No link to the
    file (the tenant's links are signed and expire; Meta's urls carry a token and are never
    stored), nor the storage name."""

    list_display = ["created_at", "organization", "number", "wamid", "message_type", "status",
                    "mime_type", "size", "attempts", "error", "stored_at", "deleted_at"]
    list_filter = ["status", "organization"]
    search_fields = ["=message__wamid"]  # the unique index; media_id has none
    date_hierarchy = "created_at"
    list_select_related = ["organization", "message__config"]
    fields = ["organization", "number", "wamid", "message_type", "media_id", "status",
              "has_file", "mime_type", "size", "sha256", "attempts", "error", "created_at",
              "stored_at", "deleted_at"]
    readonly_fields = fields
    actions = ["retry_selected"]

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.operate_connection")

    @admin.display(description=_("number"), ordering="message__config__display_phone_number")
    def number(self, obj: MessageMedia) -> str:
        return str(obj.message.config or "—")

    @admin.display(description=_("message"), ordering="message__wamid")
    def wamid(self, obj: MessageMedia) -> str:
        return obj.message.wamid

    @admin.display(description=_("message type"), ordering="message__type")
    def message_type(self, obj: MessageMedia) -> str:
        return labels.label(labels.MESSAGE_TYPE, obj.message.type)

    @admin.display(description=_("file stored"), boolean=True)
    def has_file(self, obj: MessageMedia) -> bool:
        return bool(obj.file)

    @admin.action(description=_("Try downloading again"), permissions=["retry"])
    def retry_selected(self, request, queryset) -> None:
        # The selection is read before the retry: a list filtered on "failed" no longer holds
        # the rows once they are pending again.
        selected = list(queryset.values_list("pk", flat=True))
        queued = media_retry(selected, actor=request.user, request=request)
        if queued:
            self.message_user(request, ngettext(
                "%(n)d media download queued again.", "%(n)d media downloads queued again.",
                len(queued)) % {"n": len(queued)})
        skipped = len(selected) - len(queued)
        if skipped:
            self.message_user(request, " ".join((
                ngettext("%(n)d media was not retried.", "%(n)d media were not retried.",
                         skipped) % {"n": skipped},
                str(_("Only a failed download can be tried again (pending or stored media need "
                      "nothing; rejected media break the size or type rules; expired or "
                      "removed media Meta no longer has).")))), level=messages.WARNING)
