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
