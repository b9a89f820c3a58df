"""Message templates per organization: synced from the WABA, kept current by Meta's
`message_template_status_update` events, and checked (name, language, parameters) before a
send is queued (seed 003 §6, Gap B)."""

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.core.payloads import TemplateStatusUpdate
from whatsapp.core.phones import at
from whatsapp.models import Connection, MessageTemplate, TemplateStatusEvent

logger = logging.getLogger(__name__)

HELLO_WORLD = "hello_world"
# {{1}} or, for templates with named parameters, {{first_name}}.
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")
# What a status event makes the template's status. None: the event says nothing about
# sendability (FLAGGED is a quality warning; the template keeps sending until PAUSED).
EVENT_STATUS: dict[str, str | None] = {
    "APPROVED": "APPROVED", "REJECTED": "REJECTED", "PENDING": "PENDING",
    "DISABLED": "DISABLED", "PAUSED": "PAUSED", "LOCKED": "LOCKED", "IN_APPEAL": "IN_APPEAL",
    "ARCHIVED": "ARCHIVED", "DELETED": "DELETED", "PENDING_DELETION": "PENDING_DELETION",
    "LIMIT_EXCEEDED": "LIMIT_EXCEEDED", "REINSTATED": "APPROVED",
    # Meta restores the status it had before archiving, which the event does not carry.
    "UNARCHIVED": "UNARCHIVED", "FLAGGED": None,
}


class TemplateError(Exception):
    """A template send that Meta would refuse; `message` is for the API caller (pt-BR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parameter_counts(components: list[dict]) -> tuple[int, int]:
    """(body, header) placeholders: each distinct {{n}} needs one parameter."""
    counts = {"BODY": 0, "HEADER": 0}
    for component in components or []:
        kind = str(component.get("type", "")).upper()
        if kind in counts and (kind == "BODY" or component.get("format", "TEXT") == "TEXT"):
            counts[kind] = len(set(PLACEHOLDER.findall(str(component.get("text", "")))))
    return counts["BODY"], counts["HEADER"]


# --- Sync from the WABA ---------------------------------------------------------------------------
@dataclass
class SyncResult:
    waba_id: str
    created: int = 0
    updated: int = 0

    def as_dict(self) -> dict:
        return {"waba_id": self.waba_id, "created": self.created, "updated": self.updated}


def templates_sync(connection: Connection, *, client: GraphClient | None = None) -> SyncResult:
    """Upserts the WABA's templates by (WABA, name, language); `use` mappings are kept.

    Templates missing from the listing are left alone: graph.message_templates reads one page,
    and a deletion arrives as its own DELETED event anyway.
    """
    client = client or GraphClient(connection.get_access_token())
    now = timezone.now()
    result = SyncResult(waba_id=connection.waba_id)
    for item in client.message_templates(connection.waba_id):
        name, language = str(item.get("name", ""))[:512], str(item.get("language", ""))[:16]
        if not name or not language:
            continue
        components = item.get("components") if isinstance(item.get("components"), list) else []
        body_count, header_count = parameter_counts(components)
        _, created = MessageTemplate.objects.update_or_create(
            waba_id=connection.waba_id, name=name, language=language,
            defaults={
                "organization_id": connection.organization_id, "connection": connection,
                "template_id": str(item.get("id", ""))[:64],
                "category": str(item.get("category", ""))[:32],
                "status": str(item.get("status", "")).upper()[:32], "status_at": now,
                "components": components, "body_parameter_count": body_count,
                "header_parameter_count": header_count, "synced_at": now,
            },
        )
        result.created += created
        result.updated += not created
    logger.info("Templates of WABA %s synced: %s", connection.waba_id, result.as_dict())
    return result


def templates_sync_all(*, organization=None) -> list[SyncResult]:
    """Every connected WABA with a token (or one organization's), for the command and beat."""
    connections = Connection.objects.filter(status=Connection.Status.CONNECTED,
                                            token_status=Connection.TokenStatus.VALID)
    if organization is not None:
        connections = connections.filter(organization=organization)
    results = []
    for connection in connections.exclude(organization=None):
        try:
            results.append(templates_sync(connection))
        except GraphError as exc:
            # One WABA's trouble (token revoked, Meta down) must not stop the others' sync.
            logger.warning("Template sync of WABA %s failed: %s", connection.waba_id, exc)
    return results


# --- Status events --------------------------------------------------------------------------------
def template_status_follow(event: TemplateStatusEvent | None) -> None:
    """Applies a stored `message_template_status_update` to the template (newest event wins)."""
    if event is None:
        return
    new_status = EVENT_STATUS.get(event.event, event.event)
    template = (MessageTemplate.objects.select_for_update()
                .filter(waba_id=event.waba_id, template_id=event.template_id).first())
    if template is None and event.template_name and event.language:
        template, _created = MessageTemplate.objects.get_or_create(
            waba_id=event.waba_id, name=event.template_name[:512], language=event.language,
            defaults={"organization_id": event.organization_id, "connection": event.connection,
                      "template_id": event.template_id, "category": event.category})
    if template is None or new_status is None or _older(event.event_at, template.status_at):
        return
    template.status = new_status[:32]
    template.status_at = event.event_at or timezone.now()
    template.status_reason = event.reason[:255]
    template.template_id = template.template_id or event.template_id
    template.save(update_fields=["status", "status_at", "status_reason", "template_id",
                                 "updated_at"])


def _older(when: datetime | None, than: datetime | None) -> bool:
    return bool(when and than and when < than)


# --- Validation before sending --------------------------------------------------------------------
def template_for_send(*, organization, config, name: str = "", language: str = "",
                      use: str = "", body_parameters: list, header_parameters: list
                      ) -> MessageTemplate | None:
    """The approved template a send may use, or TemplateError saying why not.

    hello_world is Meta's test template: only where WHATSAPP_ALLOW_HELLO_WORLD is on, and then
    it needs no synced row (returns None).
    """
    if use:
        template = MessageTemplate.objects.filter(organization=organization, use=use).first()
        if template is None:
            raise TemplateError(_("No template is mapped to the use “%(use)s”.") % {"use": use})
        name = template.name
    if name == HELLO_WORLD and not settings.WHATSAPP_ALLOW_HELLO_WORLD:
        # Whichever way it is asked for (by name, or mapped to a use).
        raise TemplateError(_("The hello_world test template is not allowed in this "
                              "environment."))
    if not use:
        candidates = MessageTemplate.objects.filter(organization=organization, name=name)
        template = candidates.filter(language=language).first()
        if template is None and name == HELLO_WORLD:
            # Meta's sample exists on every WABA even before a sync; it has no parameters.
            if body_parameters or header_parameters:
                raise TemplateError(_("hello_world takes no parameters."))
            return None
        if template is None:
            languages = sorted(candidates.values_list("language", flat=True))
            if languages:
                raise TemplateError(
                    _("Template “%(name)s” has no “%(language)s” version (available: "
                      "%(languages)s).") % {"name": name, "language": language,
                                            "languages": ", ".join(languages)})
            raise TemplateError(_("Unknown template “%(name)s”.") % {"name": name})
    if template.waba_id != config.connection.waba_id:
        raise TemplateError(_("Template “%(name)s” belongs to another WhatsApp account than "
                              "the sending number.") % {"name": template.name})
    if not template.is_sendable:
        raise TemplateError(_("Template “%(name)s” is not approved (status: %(status)s).")
                            % {"name": template.name, "status": template.status or "?"})
    _check_count(_("body"), template.body_parameter_count, body_parameters)
    _check_count(_("header"), template.header_parameter_count, header_parameters)
    return template


def _check_count(part: str, expected: int, given: list) -> None:
    if len(given) != expected:
        raise TemplateError(_("The template %(part)s takes %(expected)d parameters, "
                              "%(given)d given.")
                            % {"part": part, "expected": expected, "given": len(given)})


def template_payload(*, name: str, language: str, body_parameters: list,
                     header_parameters: list) -> dict:
    """The Graph `template` object (positional text parameters)."""
    components = []
    if header_parameters:
        components.append({"type": "header", "parameters": [
            {"type": "text", "text": str(p)} for p in header_parameters]})
    if body_parameters:
        components.append({"type": "body", "parameters": [
            {"type": "text", "text": str(p)} for p in body_parameters]})
    template: dict = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = components
    return template


@transaction.atomic
def template_use_set(*, template: MessageTemplate, use: str) -> MessageTemplate:
    """Maps a template to a use, taking the use away from the organization's previous one."""
    MessageTemplate.objects.filter(organization=template.organization_id, use=use).exclude(
        pk=template.pk).update(use="")
    template.use = use
    template.save(update_fields=["use", "updated_at"])
    return template


def template_status_record(update: TemplateStatusUpdate) -> TemplateStatusEvent | None:
    if not update.template_id or not update.event:
        logger.warning("message_template_status_update without template id/event: stored only")
        return None
    connection = Connection.objects.active().filter(waba_id=update.waba_id).first()
    event, _ = TemplateStatusEvent.objects.get_or_create(
        waba_id=update.waba_id, template_id=update.template_id, event=update.event,
        event_at=at(update.time),
        defaults={
            "connection": connection,
            "organization_id": connection.organization_id if connection else None,
            "template_name": update.name[:512], "language": update.language[:16],
            "category": update.category[:32], "reason": update.reason, "info": update.info,
        },
    )
    if connection:
        Connection.objects.filter(pk=connection.pk).touch()
    template_status_follow(event)
    return event
