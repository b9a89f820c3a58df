from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class OnboardingUrlQuerySerializer(serializers.Serializer):
    redirectPath = serializers.CharField(
        required=False, max_length=300, default=settings.WHATSAPP_DEFAULT_REDIRECT_PATH,
        help_text="Same-site relative path to return to, e.g. /dashboard/settings/whatsapp.",
    )

    def validate_redirectPath(self, value: str) -> str:
        # Only a path on this site: "/x". Not "//evil.com", "/\\evil.com", "https://…",
        # "javascript:", nor control characters that browsers strip.
        if (
            not value.startswith("/")
            or value.startswith(("//", "/\\"))
            or any(ord(ch) < 32 or ch == "\\" for ch in value)
            or not url_has_allowed_host_and_scheme(value, allowed_hosts=None)
        ):
            raise serializers.ValidationError(
                _("redirectPath must be a relative path on this site, such as "
                  "/dashboard/settings/whatsapp.")
            )
        return value


class OnboardingUrlSerializer(serializers.Serializer):
    url = serializers.URLField()
    trackingCode = serializers.UUIDField()
    expiresAt = serializers.DateTimeField()


FINISH_EVENTS = ["FINISH", "FINISH_ONLY_WABA", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                 "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS"]


class EmbeddedSignupCallbackSerializer(serializers.Serializer):
    """What the settings page relays from Meta's popup (WA_EMBEDDED_SIGNUP + the login code)."""

    state = serializers.UUIDField(help_text="The onboarding's tracking code.")
    event = serializers.ChoiceField(choices=[*FINISH_EVENTS, "CANCEL", "ERROR"])
    code = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    wabaId = serializers.RegexField(r"^\d{1,32}$", required=False, allow_blank=True)
    phoneNumberId = serializers.RegexField(r"^\d{1,32}$", required=False, allow_blank=True)
    businessId = serializers.RegexField(r"^\d{1,32}$", required=False, allow_blank=True)
    # Account model phase 2: the WhatsApp Business Account (one number) Meta's event names.
    waacId = serializers.RegexField(r"^\d{1,32}$", required=False, allow_blank=True)
    currentStep = serializers.CharField(required=False, allow_blank=True, max_length=64)
    # Meta's current name is error_code; older pages say error_id: the page sends either here.
    errorCode = serializers.CharField(required=False, allow_blank=True, max_length=64)
    errorMessage = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sessionId = serializers.CharField(required=False, allow_blank=True, max_length=128)

    def validate(self, attrs: dict) -> dict:
        if attrs["event"] in FINISH_EVENTS and not attrs.get("code"):
            raise serializers.ValidationError(
                {"code": _("A finished signup must carry Meta's authorization code.")}
            )
        return attrs


class SelectPhoneSerializer(serializers.Serializer):
    wabaId = serializers.RegexField(r"^\d{1,32}$")
    phoneId = serializers.RegexField(r"^\d{1,32}$")


class DisconnectSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   default="user_request")
    # Which of the organization's connections (several numbers); empty = the newest live one.
    connectionId = serializers.UUIDField(required=False, allow_null=True, default=None)


class ConnectionRetrySerializer(serializers.Serializer):
    # Which connection to run again; empty = the newest one in error (or stalled).
    connectionId = serializers.UUIDField(required=False, allow_null=True, default=None)
