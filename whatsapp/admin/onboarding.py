"""Onboardings and phone numbers in the admin: read-only rows, with support's actions (cancel a
pending onboarding, request a failed coexistence sync again) calling the rooms' functions."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdmin
from whatsapp.backoffice import labels
from whatsapp.models import Onboarding, PhoneNumber
from whatsapp.onboarding.coexistence import sync_rerequest
from whatsapp.onboarding.signup import OnboardingError, onboarding_cancel

from .coded import coded
from .filters import PeriodFilter, SyncFailedFilter


@admin.register(Onboarding)
class OnboardingAdmin(ReadOnlyAdmin):
    list_display = ["tracking_code", "organization", "status", "variant", "created_at",
                    "expires_at", "completed_at", "waba_id"]
    list_filter = ["status", "variant", PeriodFilter, "organization"]
    search_fields = ["tracking_code", "waba_id", "organization__name"]
    date_hierarchy = "created_at"
    exclude = ["current_step", "finish_event", "webhook_payload"]
    readonly_fields = ["step", "signup_event"]
    actions = ["cancel_selected"]
    step = coded("current_step", labels.SIGNUP_STEP, _("step"))
    signup_event = coded("finish_event", labels.SIGNUP_EVENT, _("finish event"))

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.operate_onboarding")

    @admin.action(description=_("Cancel selected pending onboardings"), permissions=["operate"])
    def cancel_selected(self, request, queryset) -> None:
        cancelled = 0
        for onboarding in queryset:
            try:
                onboarding_cancel(onboarding_id=onboarding.pk, actor=request.user,
                                  request=request)
            except OnboardingError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, _(
                "%(n)d onboarding(s) cancelled: the tenant's page now offers to try again.")
                % {"n": cancelled})


@admin.register(PhoneNumber)
class PhoneNumberAdmin(ReadOnlyAdmin):
    list_display = ["display_phone_number", "phone_number_id", "organization", "status",
                    "quality", "limit", "is_on_biz_app", "contacts_sync_status",
                    "history_sync_status"]
    list_filter = [SyncFailedFilter, "status", "is_on_biz_app"]
    search_fields = ["phone_number_id", "display_phone_number", "organization__name"]
    exclude = ["registration_pin_encrypted", "quality_rating", "messaging_limit",
               "quality_event"]
    readonly_fields = ["quality", "limit", "messaging_limit_at", "last_quality_event"]
    actions = ["rerequest_sync"]
    quality = coded("quality_rating", labels.QUALITY_RATING, _("quality rating"))
    limit = coded("messaging_limit", labels.MESSAGING_LIMIT, _("messaging limit"))
    last_quality_event = coded("quality_event", labels.QUALITY_EVENT, _("last quality event"))

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.operate_connection")

    @admin.action(description=_("Request the failed coexistence sync again"),
                  permissions=["operate"])
    def rerequest_sync(self, request, queryset) -> None:
        for number in queryset:
            try:
                kinds = sync_rerequest(phone_number_id=number.pk, actor=request.user,
                                       request=request)
            except OnboardingError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
                continue
            names = {"contacts": _("contacts"), "history": _("history")}
            self.message_user(request, _(
                "%(number)s: sync of %(kinds)s requested again; the pipeline asks Meta now.")
                % {"number": number.display_phone_number or number.phone_number_id,
                   "kinds": ", ".join(str(names[k]) for k in kinds)})
