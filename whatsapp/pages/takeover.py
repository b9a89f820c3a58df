"""The tenant's page of conversations a person took over from the phone app, each with a button
that hands it back to automation (the same rule as the API, whatsapp/api/takeover.py)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from organizations.services import organization_for_request
from whatsapp.conversations.takeover import taken_over, takeover_hand_back
from whatsapp.models import Contact

LISTED = 200


@login_required
@require_http_methods(["GET", "POST"])
def takeovers(request: HttpRequest) -> HttpResponse:
    organization = organization_for_request(request)
    if organization is None:
        return render(request, "whatsapp/takeovers.html", {"organization": None})
    if request.method == "POST":
        raw = request.POST.get("contact", "")
        contact = None
        if raw.isdigit() and int(raw) < 2**63:
            contact = takeover_hand_back(organization_id=organization.pk, contact_id=int(raw),
                                         user=request.user, request=request)
        if contact is None:
            messages.error(request, _("Conversation not found."))
        else:
            messages.success(request, _("Conversation with %(name)s handed back to the "
                                        "automation.") % {"name": contact})
        return redirect("whatsapp-takeovers")
    contacts = (Contact.objects.filter(taken_over(), organization=organization)
                .order_by("-human_takeover_at")[:LISTED])
    return render(request, "whatsapp/takeovers.html", {
        "organization": organization, "contacts": contacts,
        "hours": settings.WHATSAPP_HUMAN_TAKEOVER_HOURS,
    })
