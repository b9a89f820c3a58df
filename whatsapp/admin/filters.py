"""List filters the dashboard's tiles link to: each uses the QuerySet method the tile counts
with, so a tile's link lands on exactly the rows it counted."""

from django.conf import settings
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from whatsapp.backoffice.dashboard import PERIODS, Period


class ConnectionAttentionFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("token_invalid", _("Invalid token")),
                ("token_expiring_7", _("Token expiring within 7 days")),
                ("token_expiring_30", _("Token expiring within 30 days")),
                ("stalled", _("Stalled pipeline")),
                ("error", _("Pipeline in error"))]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "token_invalid":
            return queryset.token_invalid()
        if value in ("token_expiring_7", "token_expiring_30"):
            return queryset.token_expiring(days=int(value.rsplit("_", 1)[1]))
        if value == "stalled":
            return queryset.stalled(seconds=settings.WHATSAPP_PIPELINE_STALL_SECONDS)
        if value == "error":
            return queryset.pipeline_errors()
        return queryset


class SyncFailedFilter(admin.SimpleListFilter):
    title = _("coexistence sync")
    parameter_name = "sync"

    def lookups(self, request, model_admin):
        return [("failed", _("Failed (contacts or history)"))]

    def queryset(self, request, queryset):
        return queryset.sync_failed() if self.value() == "failed" else queryset


class PeriodFilter(admin.SimpleListFilter):
    """The dashboard's period (created in the last 7, 30 or 90 days)."""

    title = _("period")
    parameter_name = "period"

    def lookups(self, request, model_admin):
        return [(p, _("Last %(days)s days") % {"days": p}) for p in PERIODS]

    def queryset(self, request, queryset):
        if self.value() not in PERIODS:
            return queryset
        period = Period.from_request(self.value())
        return queryset.filter(created_at__gte=period.start, created_at__lt=period.end)
