"""Words for the codes support would otherwise read raw: Meta's codes (quality ratings, messaging
limits, Embedded Signup steps and events, template statuses) and the short codes our pipeline
writes (steps, token sources, how a WABA was attributed, why it was disconnected).

`label(mapping, code)` gives the translated word, or the code itself when it is unknown (a new
Meta code must still be visible, even raw). The crawl test of the back-office treats every key
here as a code that must never be shown.
"""

from django.utils.translation import gettext_lazy as _

QUALITY_RATING = {
    "GREEN": _("High"),
    "YELLOW": _("Medium"),
    "RED": _("Low"),
    "UNKNOWN": _("Unknown"),
    "NA": _("Not rated yet"),
}

QUALITY_EVENT = {
    "FLAGGED": _("Quality flagged"),
    "UNFLAGGED": _("Quality flag removed"),
    "UPGRADE": _("Messaging limit raised"),
    "DOWNGRADE": _("Messaging limit lowered"),
    "ONBOARDING": _("Number being onboarded"),
}

MESSAGING_LIMIT = {
    "TIER_50": _("50 conversations a day"),
    "TIER_250": _("250 conversations a day"),
    "TIER_1K": _("1,000 conversations a day"),
    # Portfolio limits since Oct 2025: 250 → 2,000 → 10K → 100K → unlimited.
    "TIER_2K": _("2,000 conversations a day"),
    "TIER_10K": _("10,000 conversations a day"),
    "TIER_100K": _("100,000 conversations a day"),
    "TIER_UNLIMITED": _("Unlimited"),
}

PIPELINE_STEP = {
    "token": _("Fetching the token"),
    "subscribe": _("Subscribing the app"),
    "phone_numbers": _("Reading the phone numbers"),
    "awaiting_phone_selection": _("Waiting for a number to be chosen"),
    "configure_number": _("Configuring the number"),
    "done": _("Finished"),
}

TOKEN_SOURCE = {
    "code_exchange": _("Code from the signup popup"),
    "system_user": _("Partner system user (hosted link)"),
}

ATTRIBUTED_BY = {
    "tracking_code": _("Tracking code"),
    "waba": _("WABA already known"),
    "owner_business": _("Owner business already known"),
    "browser_callback": _("Signup popup (browser)"),
    "claim": _("Claimed by support"),
}

# Meta's Embedded Signup: the finish events and the step a person cancelled on.
SIGNUP_EVENT = {
    "FINISH": _("Finished (new number)"),
    "FINISH_ONLY_WABA": _("Finished without a number"),
    "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING": _("Finished (WhatsApp Business app number)"),
    "FINISH_OBO_MIGRATION": _("Finished (migration)"),
    "FINISH_GRANT_ONLY_API_ACCESS": _("Finished (API access only)"),
    "CANCEL": _("Cancelled"),
    "ERROR": _("Error"),
}

SIGNUP_STEP = {
    "BUSINESS_ACCOUNT_SELECTION": _("Choosing the business portfolio"),
    "WABA_PHONE_PROFILE_PICKER": _("Choosing the WhatsApp account"),
    "PHONE_NUMBER_SETUP": _("Adding the phone number"),
    "PHONE_NUMBER_VERIFICATION": _("Verifying the phone number"),
    "WHATSAPP_BUSINESS_PROFILE_SETUP": _("Setting up the business profile"),
    "AWAITING_PHONE_SELECTION": _("Choosing the phone number"),
    "PERMISSIONS": _("Reviewing permissions"),
}

# Why a connection ended: ours, or Meta's account_update event (optionally ": detail").
DISCONNECT_REASON = {
    "user_request": _("Requested by the imobiliária"),
    "support": _("Support"),
    "PARTNER_REMOVED": _("App removed by the business at Meta"),
    "ACCOUNT_DELETED": _("WhatsApp account deleted at Meta"),
    "ACCOUNT_OFFBOARDED": _("Account offboarded at Meta"),
    "DISABLED_UPDATE": _("Account disabled by Meta"),
}

TEMPLATE_STATUS = {
    "APPROVED": _("Approved"),
    "PENDING": _("Pending"),
    "REJECTED": _("Rejected"),
    "PAUSED": _("Paused"),
    "DISABLED": _("Disabled"),
    "IN_APPEAL": _("In appeal"),
    "PENDING_DELETION": _("Pending deletion"),
    "DELETED": _("Deleted"),
    "FLAGGED": _("Flagged"),
    "REINSTATED": _("Reinstated"),
    "LIMIT_EXCEEDED": _("Limit exceeded"),
    "ARCHIVED": _("Archived"),
    # template_category_update and message_template_quality_update, in the same history.
    "CATEGORY_UPDATE": _("Category changed by Meta"),
    "CATEGORY_UPDATE_UPCOMING": _("Category change announced by Meta"),
    "QUALITY_UPDATE": _("Quality changed"),
}

TEMPLATE_CATEGORY = {
    "MARKETING": _("Marketing"),
    "UTILITY": _("Utility"),
    "AUTHENTICATION": _("Authentication"),
}

MESSAGE_TYPE = {
    "text": _("Text"),
    "image": _("Image"),
    "audio": _("Audio"),
    "video": _("Video"),
    "document": _("Document"),
    "sticker": _("Sticker"),
    "location": _("Location"),
    "contacts": _("Contacts"),
    "interactive": _("Interactive"),
    "button": _("Button"),
    "reaction": _("Reaction"),
    "template": _("Template"),
    "unsupported": _("Unsupported"),
    "system": _("System"),
}

# Meta's statuses of a message we sent (status webhooks), and events of our outbound queue.
MESSAGE_STATUS = {
    "sent": _("Sent"),
    "delivered": _("Delivered"),
    "read": _("Read"),
    "failed": _("Failed"),
    "deleted": _("Deleted"),
    "played": _("Played"),
}

OUTBOUND_EVENT = {
    "queued": _("Queued"),
    "dry_run": _("Dry run (not sent)"),
    "accepted": _("Accepted by Meta"),
    "retry_scheduled": _("Retry scheduled"),
    "blocked": _("Blocked by a sending rule"),
    "cancelled": _("Cancelled"),
    "failed": _("Failed"),
    "unknown": _("Outcome unknown"),
    "status_sent": _("Sent"),
    "status_delivered": _("Delivered"),
    "status_read": _("Read"),
    "status_failed": _("Failed"),
}

ALL = [QUALITY_RATING, QUALITY_EVENT, MESSAGING_LIMIT, PIPELINE_STEP, TOKEN_SOURCE,
       ATTRIBUTED_BY, SIGNUP_EVENT, SIGNUP_STEP, DISCONNECT_REASON, TEMPLATE_STATUS,
       TEMPLATE_CATEGORY, MESSAGE_TYPE, MESSAGE_STATUS, OUTBOUND_EVENT]


def label(mapping: dict, code: str | None) -> str:
    """The word for `code`, the code itself when unknown, "—" when empty."""
    if not code:
        return "—"
    return str(mapping.get(code, code))


def disconnect_reason(reason: str) -> str:
    """ "support: moved to another number" → "Suporte: moved to another number"."""
    if not reason:
        return "—"
    code, sep, detail = reason.partition(":")
    word = DISCONNECT_REASON.get(code.strip())
    if word is None:
        return reason
    return f"{word}: {detail.strip()}" if sep and detail.strip() else str(word)
