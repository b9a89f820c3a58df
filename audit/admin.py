from django.contrib import admin
from unfold.admin import ModelAdmin

from .models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(ModelAdmin):
    """Read-only for everyone, superusers included: the audit log is append-only."""

    list_display = ["created_at", "action", "organization", "actor_label", "target", "ip_address"]
    list_filter = ["action", "organization"]
    search_fields = ["target", "actor_label", "organization__name"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
