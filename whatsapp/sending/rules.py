"""The sending rules (seed 003 §5–6, Fase 1), checked when a send is queued and again right
before the Graph call, because things change while a send waits:

| rule | queue | send |
|---|---|---|
| mode disabled / kill switch (flag `whatsapp-sending`) | refused | cancelled |
| mode dry_run | queued | dry_run, Graph never called |
| recipient allowlist (global and per organization) | refused | blocked |
| free-form text only inside the 24 h window (inbound opens it; echoes don't) | refused | blocked |
| automated send to a conversation a person handles from the phone (echo seen) | refused | blocked |
| template approved, language and parameter count match | refused | blocked |
| automated template Meta moved to MARKETING, not confirmed by a person | refused | blocked |

A refusal is a `SendRefused` with a stable code; `whatsapp.api.sending` maps codes to HTTP."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.core.phones import normalize_phone
from whatsapp.models import (
    Contact,
    MessageTemplate,
    OutboundMessage,
    SendMode,
    SendPolicy,
)
from whatsapp.models.flags import flag_enabled

# Kill switch: this flag's kill_switch stops every send at once (queued ones included); an
# organization override with enabled=False stops one tenant.
SENDING_FLAG = "whatsapp-sending"


SERVICE_WINDOW = timedelta(hours=24)


MODE_RANK = {SendMode.DISABLED: 0, SendMode.DRY_RUN: 1, SendMode.ENABLED: 2}


class SendRefused(Exception):
    """The request breaks a sending rule. `code` is stable (the API maps it to an HTTP status
    and answers `{"error": message, "code": code}`); `message` is for people, in pt-BR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class SendRequest:
    kind: str
    to: str = ""
    contact_id: int | None = None
    phone_number_id: str = ""
    text: str = ""
    template_name: str = ""
    template_language: str = ""
    use: str = ""
    body_parameters: list = field(default_factory=list)
    header_parameters: list = field(default_factory=list)
    named_parameters: dict = field(default_factory=dict)
    header_media: dict = field(default_factory=dict)
    buttons: list = field(default_factory=list)
    automated: bool = False
    idempotency_key: str = ""

    def fingerprint(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# "Read the organization's SendPolicy now" (a batch passes the one it read for all its sends).
READ = object()


def policy_for(organization) -> SendPolicy | None:
    return SendPolicy.objects.filter(organization=organization).first()


def mode_for(organization, policy=READ) -> str:
    """The effective mode: the stricter of the environment's and the organization's."""
    global_mode = settings.WHATSAPP_SEND_MODE
    if global_mode not in MODE_RANK or not flag_enabled(SENDING_FLAG, organization):
        return SendMode.DISABLED
    policy = policy_for(organization) if policy is READ else policy
    org_mode = policy.mode if policy else SendMode.DRY_RUN
    return min(global_mode, org_mode, key=lambda m: MODE_RANK.get(m, 0))


def allowlisted(organization, to: str, policy=READ) -> bool:
    """Every configured allowlist (environment, organization) must contain the recipient (a
    phone number, or the BSUID of a username-only lead)."""
    policy = policy_for(organization) if policy is READ else policy
    for allowlist in (settings.WHATSAPP_SEND_ALLOWLIST, policy.allowlist if policy else []):
        entries = {normalize_phone(str(n)) for n in allowlist} | {str(n) for n in allowlist}
        if allowlist and to not in entries:
            return False
    return True


def window_open(contact: Contact | None, now: datetime | None = None) -> bool:
    """The customer-service window: 24 h from the user's last inbound message."""
    now = now or timezone.now()
    return bool(contact and contact.last_inbound_at
                and now - contact.last_inbound_at < SERVICE_WINDOW)


def handled_by_person(contact: Contact | None) -> bool:
    """Someone answered this lead from the phone app: automation stays quiet until the
    conversation is handed back (by the tenant, or WHATSAPP_HUMAN_TAKEOVER_HOURS later)."""
    return bool(contact and contact.taken_over)


def rule_broken(*, organization, to: str, contact: Contact | None, kind: str,
                automated: bool, policy=READ) -> SendRefused | None:
    if not allowlisted(organization, to, policy):
        # this environment only sends to its test numbers.
        return SendRefused("recipient_not_allowed",
                           _("This recipient is not in the sending allowlist."))
    if automated and handled_by_person(contact):
        # the conversation's state (a person took over) forbids it.
        return SendRefused("human_takeover",
                           _("A person is handling this conversation on the phone; automated "
                             "messages are not sent to it."))
    if kind != OutboundMessage.Kind.TEMPLATE and not window_open(contact):
        # outside the 24 h window Meta only accepts templates (131047).
        return SendRefused("window_closed",
                           _("The 24-hour customer service window is closed: only an approved "
                             "template can be sent."))
    return None


def template_refused(template: MessageTemplate | None, *, automated: bool) -> SendRefused | None:
    """Automation never sends, as the utility it was approved as, a template Meta moved to
    MARKETING until a person confirms the new category; a person's own send still goes."""
    if automated and template is not None and template.category_confirmation_required:
        # Meta re-categorised it (it now costs as marketing); a person must confirm first.
        return SendRefused("template_category_unconfirmed",
                           _("Meta moved template “%(name)s” to the %(category)s category. "
                             "Automated sends of it wait until someone confirms the new "
                             "category in the admin (“Confirm new category”).")
                           % {"name": template.name, "category": template.category})
    return None
