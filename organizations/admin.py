from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, Permission, User
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from .models import ApiToken, Membership, Organization

admin.site.unregister(User)
admin.site.unregister(Group)

# Django stores default permission names in English ("Can add sending policy"): build them from
# the codename and the model's translated name instead.
PERMISSION_ACTIONS = {"add": _("Can add %(model)s"), "change": _("Can change %(model)s"),
                      "delete": _("Can delete %(model)s"), "view": _("Can view %(model)s")}


def permission_label(permission: Permission) -> str:
    content_type = permission.content_type
    model = content_type.model_class()
    model_name = model._meta.verbose_name if model else content_type.model
    app_name = model._meta.app_config.verbose_name if model else content_type.app_label
    action = permission.codename.split("_", 1)[0]
    if permission.codename == f"{action}_{content_type.model}" and action in PERMISSION_ACTIONS:
        text = PERMISSION_ACTIONS[action] % {"model": model_name}
    else:
        text = gettext(permission.name)  # our custom permissions are msgids
    return f"{app_name} | {model_name} | {text}"


class PermissionLabelsMixin:
    """Permission pickers in pt-BR, without the Meta sandbox (a test stand-in, never granted)."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.related_model is Permission and field is not None:
            field.queryset = field.queryset.exclude(content_type__app_label="sandbox")
            field.label_from_instance = permission_label
        return field


@admin.register(User)
class UserAdmin(PermissionLabelsMixin, BaseUserAdmin, ModelAdmin):
    def save_model(self, request, obj, form, change) -> None:
        obj._audit_request = request  # deactivating revokes the user's API tokens, audited
        super().save_model(request, obj, form, change)


@admin.register(Group)
class GroupAdmin(PermissionLabelsMixin, BaseGroupAdmin, ModelAdmin):
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
