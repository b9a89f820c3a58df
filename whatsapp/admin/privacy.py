"""Admin for what conversations cost and for leads' data on request (issue 16 §4, §6).

- *Uso por número*: each number's month (default: this UTC month) from Meta's per-message
  pricing: messages by category and pricing type, billable ones, the free service tier used.
- *Solicitações de exclusão de dados*: every erasure request (a lead's, or Meta's callback)
  with its state and counts; never what identified the lead.
- Contacts' actions (mixed into ContactAdmin): export the selected leads as JSON, erase them;
  both audited with the staff user, both need `whatsapp.erase_contact`.
"""

import json
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from config.admin import ReadOnlyAdmin
from whatsapp.conversations import privacy
from whatsapp.models import ErasureRequest, NumberUsage
from whatsapp.sending.usage import SERVICE, month_of, month_parse

CATEGORIES = [("marketing", _("Marketing")), ("utility", _("Utility")),
              ("authentication", _("Authentication")), ("service", _("Service"))]
PRICING_TYPES = [("regular", _("Billed")), ("free_customer_service", _("Free (service)")),
                 ("free_entry_point", _("Free (entry point)"))]


def _recent_months(now: datetime, count: int = 12) -> list[str]:
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    months = []
    for _i in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months


class MonthFilter(admin.SimpleListFilter):
    """The usage month (UTC); no choice = this month. Annotates every number with its counts."""

    title = _("month")
    parameter_name = "month"

    def lookups(self, request, model_admin):
        return [(m, m) for m in _recent_months(timezone.now())]

    def queryset(self, request, queryset):
        month = self.value() if month_parse(self.value() or "") else month_of(timezone.now())
        start, end = month_parse(month)
        priced = Q(outbound_messages__priced_at__gte=start, outbound_messages__priced_at__lt=end)
        delivered = (Q(outbound_messages__delivered_at__isnull=False)
                     | Q(outbound_messages__read_at__isnull=False))
        counts = {
            "usage_messages": Count("outbound_messages", filter=priced),
            "usage_billable": Count("outbound_messages",
                                    filter=priced & Q(outbound_messages__pricing_billable=True)),
            "usage_service_delivered": Count("outbound_messages", filter=priced & delivered & Q(
                outbound_messages__pricing_category=SERVICE)),
            "usage_service_billed": Count("outbound_messages", filter=priced & Q(
                outbound_messages__pricing_category=SERVICE,
                outbound_messages__pricing_type="regular")),
        }
        for code, _label in CATEGORIES:
            counts[f"usage_category_{code}"] = Count("outbound_messages", filter=priced & Q(
                outbound_messages__pricing_category=code))
        for code, _label in PRICING_TYPES:
            counts[f"usage_type_{code}"] = Count("outbound_messages", filter=priced & Q(
                outbound_messages__pricing_type=code))
        return queryset.annotate(**counts)


def _column(name: str, description):
    @admin.display(description=description, ordering=name)
    def show(self, obj) -> str:
        return number_format(getattr(obj, name, 0), force_grouping=True)

    return show


class NumberUsageAdmin(ReadOnlyAdmin):
    list_filter = [MonthFilter, "organization"]
    search_fields = ["phone_number_id", "display_phone_number", "organization__name"]
    list_display = ["__str__", "organization", "priced_messages", "billable", *[
        f"category_{code}" for code, _label in CATEGORIES], *[
        f"type_{code}" for code, _label in PRICING_TYPES], "free_tier_used", "free_tier_exceeded"]
    list_display_links = None
    ordering = ["organization__name", "display_phone_number"]

    priced_messages = _column("usage_messages", _("messages"))
    billable = _column("usage_billable", _("billable"))

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization")

    def get_urls(self):
        # A report: only the list (the number itself is under Números de telefone).
        info = self.opts.app_label, self.opts.model_name
        return [path("", self.admin_site.admin_view(self.changelist_view),
                     name="{}_{}_changelist".format(*info))]

    @admin.display(description=_("free service tier used"))
    def free_tier_used(self, obj) -> str:
        size = settings.WHATSAPP_FREE_SERVICE_TIER
        used = min(getattr(obj, "usage_service_delivered", 0), size)
        return _("%(used)s of %(size)s") % {"used": number_format(used, force_grouping=True),
                                             "size": number_format(size, force_grouping=True)}

    @admin.display(description=_("left the free tier"), boolean=True)
    def free_tier_exceeded(self, obj) -> bool:
        return (getattr(obj, "usage_service_delivered", 0) > settings.WHATSAPP_FREE_SERVICE_TIER
                or getattr(obj, "usage_service_billed", 0) > 0)


for _code, _label in CATEGORIES:
    setattr(NumberUsageAdmin, f"category_{_code}", _column(f"usage_category_{_code}", _label))
for _code, _label in PRICING_TYPES:
    setattr(NumberUsageAdmin, f"type_{_code}", _column(f"usage_type_{_code}", _label))
admin.site.register(NumberUsage, NumberUsageAdmin)


@admin.register(ErasureRequest)
class ErasureRequestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "state", "organization", "contact_id",
                    "requested_by", "attempts", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["=confirmation_code", "=contact_id"]
    # Never `subject`: it identifies the lead while the erasure runs.
    fields = ["kind", "state", "organization", "contact_id", "confirmation_code",
              "requested_by", "attempts", "locked_until", "result", "last_error", "created_at",
              "finished_at"]
    readonly_fields = fields


class LeadPrivacyActions:
    """Mixed into ContactAdmin: support acts on a tenant's (or a lead's) request."""

    actions = ["export_selected", "erase_selected"]

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.erase_contact")

    @admin.action(description=_("Export the selected leads' data (JSON)"), permissions=["erase"])
    def export_selected(self, request, queryset) -> HttpResponse:
        data = [privacy.contact_export(c, user=request.user, request=request)
                for c in queryset.select_related("organization")[:100]]
        response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2),
                                content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="leads.json"'
        return response

    @admin.action(description=_("Erase the selected leads and their data (LGPD)"),
                  permissions=["erase"])
    def erase_selected(self, request, queryset) -> None:
        requests = [privacy.erasure_request(c, user=request.user, request=request)
                    for c in queryset.select_related("organization")]
        self.message_user(request, ngettext(
            "%(n)d lead scheduled for erasure; follow it under data erasure requests.",
            "%(n)d leads scheduled for erasure; follow them under data erasure requests.",
            len(requests)) % {"n": len(requests)}, level=messages.INFO)
