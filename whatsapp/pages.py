"""Server-rendered pages for imobiliária admins."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from organizations.services import organization_for_request

from . import services


@login_required
def home(request: HttpRequest) -> HttpResponse:
    organization = organization_for_request(request)
    status = services.connection_status_for(organization) if organization else None
    return render(request, "home.html", {"organization": organization, "status": status})


@login_required
def whatsapp_settings(request: HttpRequest) -> HttpResponse:
    organization = organization_for_request(request)
    status = services.connection_status_for(organization) if organization else None
    return render(request, "whatsapp/settings.html",
                  {"organization": organization, "status": status})
