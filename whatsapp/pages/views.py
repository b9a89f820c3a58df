"""Server-rendered pages of an imobiliária: admins connect and manage WhatsApp here; members
see the same pages with the status only (templates read `is_org_admin`; the API refuses a
member's connect, number choice and disconnect whatever the page shows)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from organizations.permissions import is_org_admin
from organizations.services import organization_for_request
from whatsapp.api.presenters import connection_status_for
from whatsapp.backoffice import labels
from whatsapp.models import AnalyticsEvent, flags
from whatsapp.onboarding.analytics import analytics_record
from whatsapp.onboarding.signup import launch_extras, signup_enabled_for

# States in which the page shows the instructions and the connect button.
START_STATES = ["not_connected", "cancelled", "stalled", "expired", "error", "token_invalid",
                "disconnected"]
RETRY_STATES = ["cancelled", "stalled", "expired", "error"]
RECONNECT_STATES = ["token_invalid", "disconnected"]
META_ORIGINS = ["https://www.facebook.com", "https://web.facebook.com",
                "https://business.facebook.com"]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    organization = organization_for_request(request)
    if organization is None and request.user.is_staff:
        return redirect("admin:index")  # support staff belong to no imobiliária
    status = connection_status_for(organization) if organization else None
    return render(request, "home.html", {"organization": organization, "status": status})


@login_required
def whatsapp_settings(request: HttpRequest) -> HttpResponse:
    organization = organization_for_request(request)
    context = {"organization": organization, "start_states": START_STATES,
               "retry_states": RETRY_STATES, "reconnect_states": RECONNECT_STATES}
    if organization:
        analytics_record(
            name=AnalyticsEvent.Name.SETUP_SCREEN_VIEWED,
            # Once per admin and day: reloads and polling are not new visits.
            dedupe_key=f"viewed:{organization.pk}:{request.user.pk}:{timezone.localdate()}",
            organization=organization, user=request.user,
        )
        signup_enabled = signup_enabled_for(organization)
        status = connection_status_for(organization)
        context.update(
            status=status,
            any_connected=any(c["status"] == "connected" for c in status["connections"]),
            signup_enabled=signup_enabled,
            page_config=_page_config(request, organization, signup_enabled,
                                     can_manage=is_org_admin(request)),
        )
    return render(request, "whatsapp/settings.html", context)


def _page_config(request: HttpRequest, organization, signup_enabled: bool, *,
                 can_manage: bool) -> dict:
    if not can_manage:
        sdk_url, origins = "", []  # a member cannot start a signup: no Meta SDK on the page
    elif settings.META_SANDBOX:
        # The demo's stand-in for Meta serves an SDK with the same FB.login contract.
        sdk_url, origins = "/sandbox/sdk.js", [f"{request.scheme}://{request.get_host()}"]
    elif settings.META_APP_ID:
        sdk_url, origins = "https://connect.facebook.net/en_US/sdk.js", META_ORIGINS
    else:
        sdk_url, origins = "", []  # no app configured: the hosted link is the only way
    return {
        "sdkUrl": sdk_url,
        "appId": settings.META_APP_ID,
        "configId": settings.META_CONFIG_ID,
        "graphVersion": settings.META_GRAPH_API_VERSION,
        "allowedOrigins": origins,
        "signupEnabled": signup_enabled,
        # The popup's FB.login extras (META_EMBEDDED_SIGNUP_VERSION); the page adds the
        # onboarding's tracking code as sessionInfo, as the hosted link does.
        "extras": launch_extras(),
        "hostedFirst": flags.flag_enabled(flags.V2_ONBOARDING, organization),
        "csrfToken": get_token(request),
        # Polling every 2 s gives up after this long (then the page says so, with a button).
        "pollSeconds": 300,
        "texts": {
            "connect": _("Connect WhatsApp"),
            "connecting": _("Connecting…"),
            "genericError": _("Something went wrong. Please try again."),
            "connectAgain": _("Connect through Meta's window"),
            # {attempt}, {max}, {time}: the next automatic attempt of a failing setup step.
            "retrying": _("Meta did not answer. We try again by ourselves at {time} (attempt "
                          "{attempt} of {max})."),
            "quality": _("Quality: {quality}"),
            "qualities": {"GREEN": _("high"), "YELLOW": _("medium"), "RED": _("low")},
            "coexistence": _("WhatsApp Business app on the phone"),
            "contacts": _("Contacts: {state}"),
            "history": _("History: {state}"),
            "historyPercent": _("History: {percent}% imported"),
            "syncStates": {"pending": _("waiting"), "running": _("syncing"),
                           "requested": _("requested from Meta"), "done": _("done"),
                           "declined": _("not shared by the business"),
                           "failed": _("failed (support was alerted)")},
            "disconnectThis": _("Disconnect this number"),
            "messagingLimit": _("Messaging limit: %(limit)s"),
            "limits": {code: str(text) for code, text in labels.MESSAGING_LIMIT.items()},
        },
    }
