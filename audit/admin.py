from django.contrib import admin

from config.admin import ReadOnlyAdmin

from .models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """Read-only for everyone, superusers included: the audit log is append-only."""

    list_display = ["created_at", "action", "organization", "actor_label", "target", "ip_address"]
    list_filter = ["action", "organization"]
    search_fields = ["target", "actor_label", "organization__name"]
    date_hierarchy = "created_at"
