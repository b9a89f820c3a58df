"""Every failure a tenant can see, as a pt-BR text that says what happened, what to do, and the
code to quote to support: Meta's Embedded Signup error codes (META-PLATFORM §3), the callback's
refusals, the pipeline's blocks, and each reason a connection was disconnected.

Meta's own error text is never shown (it is English, or advice that does not fit our flow):
an unknown Meta code reads as a generic Meta failure with its code.
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

_NOT_BUSINESS_APP = (
    gettext_lazy("this number is not a WhatsApp Business app number"),
    gettext_lazy("Move the number to the WhatsApp Business app, or choose to register a new "
                 "number, then try again."))
_OTHER_PLATFORM = (
    gettext_lazy("the number is still connected to another business platform"),
    gettext_lazy("Disconnect it in the WhatsApp Business app, wait 15 minutes, then try again."))
_NO_ACCESS = gettext_lazy("we could not get access to your account from Meta")
_RETRY_OR_SUPPORT = gettext_lazy("Try again; if it happens again, contact support.")

# code → (what happened, what to do). Codes are Meta's numbers (the popup's error_code, Graph
# error codes) or our own names (the callback's refusal codes, the pipeline's blocks).
FAILURES = {
    # Embedded Signup errors reported by Meta's popup (META-PLATFORM §3).
    "3441041": (gettext_lazy("the number is not associated with the business you selected"),
                gettext_lazy("Choose the business that owns the number, or add the number to "
                             "it in Meta Business Suite, then try again.")),
    "3441045": (gettext_lazy("this number is not eligible yet"),
                gettext_lazy("Keep using it on the WhatsApp Business app for a few more days, "
                             "then try again.")),
    "2655095": _NOT_BUSINESS_APP,
    "2655048": _NOT_BUSINESS_APP,
    "3441042": (gettext_lazy("this option is not available in the number's region yet"),
                gettext_lazy("Register a new number on the Cloud API instead.")),
    "2655093": (gettext_lazy("the number is already shared with another partner"),
                gettext_lazy("In the WhatsApp Business app, open Settings › Business platform, "
                             "disconnect the current partner, then try again.")),
    "3441049": _OTHER_PLATFORM,
    "2655094": _OTHER_PLATFORM,
    "4563015": (gettext_lazy("your WhatsApp Business app is out of date"),
                gettext_lazy("Update the WhatsApp Business app on your phone, then try again.")),
    # The callback's refusals (whatsapp.api.views.ONBOARDING_ERROR_STATUS).
    "code_refused": (gettext_lazy("Meta did not accept the authorization from the window"),
                     gettext_lazy("Try again and finish the steps without pausing.")),
    "waba_not_granted": (gettext_lazy("Meta did not grant access to the WhatsApp account you "
                                      "chose"),
                         gettext_lazy("Try again and accept every permission on the last "
                                      "screen.")),
    "meta_unavailable": (gettext_lazy("Meta did not answer in time"),
                         gettext_lazy("Wait a few minutes and try again.")),
    "waba_taken": (gettext_lazy("this WhatsApp account is connected to another organization"),
                   gettext_lazy("Contact support.")),
    # The pipeline's blocks and failures after the WABA was shared.
    "no_phone_number": (gettext_lazy("the WhatsApp account has no phone number"),
                        gettext_lazy("Try again and add a number in Meta's window.")),
    "no_system_user_token": (_NO_ACCESS,
                             gettext_lazy("Try again: the window that opens grants it.")),
    "owner_business_unproven": (gettext_lazy("Meta did not confirm which business owns the "
                                             "account"),
                                _RETRY_OR_SUPPORT),
    "token_fetch_failed": (_NO_ACCESS, _RETRY_OR_SUPPORT),
    "133016": (gettext_lazy("Meta blocked the number's registration for 72 hours after too "
                            "many attempts"),
               gettext_lazy("Wait 72 hours, then contact support to finish the registration.")),
    "registration_failed": (gettext_lazy("Meta refused to register the number"),
                            gettext_lazy("Contact support.")),
    "token_invalid": (gettext_lazy("Meta no longer accepts our access to your account"),
                      gettext_lazy("Reconnect WhatsApp.")),
    "meta_refused": (gettext_lazy("Meta refused a step of the setup"), _RETRY_OR_SUPPORT),
    "number_taken": (gettext_lazy("this number is already connected to another organization"),
                     gettext_lazy("Contact support.")),
    "pipeline_failed": (gettext_lazy("the setup could not be finished"), _RETRY_OR_SUPPORT),
}

# A code nobody mapped (a new Meta error): still said plainly, with the code.
UNKNOWN = (gettext_lazy("Meta reported an error"), _RETRY_OR_SUPPORT)


def failure_message(code: str) -> str:
    """'Could not connect. Error: <what>. <what to do> Code for support: <code>.'"""
    code = (code or "").strip() or "unknown"
    what, todo = FAILURES.get(code, UNKNOWN)
    return _("Could not connect. Error: %(what)s. %(todo)s Code for support: %(code)s.") % {
        "what": what, "todo": todo, "code": code}


# Disconnection reason (Connection.disconnect_reason, "EVENT" or "EVENT: detail") → why.
DISCONNECT_REASONS = {
    "PARTNER_REMOVED": gettext_lazy("your business removed Qualifica Leads' access in Meta"),
    "PARTNER_APP_UNINSTALLED": gettext_lazy("the Qualifica Leads app was removed from your "
                                            "WhatsApp account in Meta"),
    "ACCOUNT_OFFBOARDED": gettext_lazy("Meta took the number off the Cloud API (offboarded)"),
    "no_longer_shared": gettext_lazy("Meta no longer shares your WhatsApp account with us"),
    "support": gettext_lazy("support disconnected it"),
}


def disconnect_code(reason: str) -> str:
    """The stable code of a stored reason; anything else was the admin's own choice."""
    head = (reason or "").partition(":")[0].strip()
    return head if head in DISCONNECT_REASONS else "user_request"


def disconnect_message(reason: str) -> str:
    code = disconnect_code(reason)
    if code == "user_request":
        return _("WhatsApp disconnected by an administrator of your organization. Reconnect "
                 "to receive messages again.")
    return _("WhatsApp disconnected: %(why)s. Reconnect to receive messages again. Code for "
             "support: %(code)s.") % {"why": DISCONNECT_REASONS[code], "code": code}
