from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from unfold.admin import ModelAdmin, TabularInline

from .models import ApiToken, Membership, Organization

admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    def save_model(self, request, obj, form, change) -> None:
        obj._audit_request = request  # deactivating revokes the user's API tokens, audited
        super().save_model(request, obj, form, change)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change) -> None:
        for deleted in getattr(formset, "deleted_forms", []):
            deleted.instance._audit_request = request  # revokes that member's API tokens
        super().save_formset(request, form, formset, change)


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]

    # Removing a membership revokes the user's API tokens for that organization (audited with
    # the staff user who removed it).
    def delete_model(self, request, obj) -> None:
        obj._audit_request = request
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset:
            self.delete_model(request, membership)


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    # Only the hash is stored; tokens are issued with `manage.py create_api_token`.
    list_display = ["token_prefix", "name", "user", "organization", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["organization"]
    readonly_fields = ["token_prefix", "user", "organization", "created_at", "last_used_at"]
    fields = ["token_prefix", "name", "user", "organization", "created_at", "last_used_at",
              "revoked_at"]

    def has_add_permission(self, request) -> bool:
        return False
