"""Public pages about personal data (no login): the privacy policy with the data-deletion
instructions Meta's App Review reads, and the status page of one data-deletion request (the
`url` answered to Meta's callback, found by its confirmation code)."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from whatsapp.models import ErasureRequest


def privacy_policy(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy/policy.html", {
        "retention_days": settings.WHATSAPP_WEBHOOK_RETENTION_DAYS,
        "contact_email": settings.PRIVACY_CONTACT_EMAIL})


def deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    erasure = (ErasureRequest.objects.filter(confirmation_code=code[:32])
               .only("state", "kind", "created_at", "finished_at", "confirmation_code").first())
    if erasure is None:
        raise Http404
    response = render(request, "privacy/deletion_status.html", {"erasure": erasure})
    response["X-Robots-Tag"] = "noindex"
    return response
