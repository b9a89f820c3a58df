"""Message templates per organization: synced from the WABA (every page of the listing), kept
current by Meta's template webhooks (template_events), and checked (which template, approved)
before a send is queued (seed 003 §6, Gap B); its parameters are template_params' job."""

import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection, MessageTemplate

from .template_events import category_change_apply

logger = logging.getLogger(__name__)

HELLO_WORLD = "hello_world"
# {{1}} or, for templates with named parameters, {{first_name}}.
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")


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

    graph.message_templates follows every page of the listing. Templates missing from it are
    left alone: a deletion arrives as its own DELETED event anyway.
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
        with transaction.atomic():
            template, created = MessageTemplate.objects.select_for_update().get_or_create(
                waba_id=connection.waba_id, name=name, language=language,
                defaults={"organization_id": connection.organization_id})
            category = str(item.get("category", "")).upper()[:32]
            if not created and category and template.category and category != template.category:
                # Re-categorised at Meta and the webhook missed (or not yet here).
                category_change_apply(template, previous=template.category, new=category,
                                      when=now)
            template.organization_id = connection.organization_id
            template.connection = connection
            template.template_id = str(item.get("id", ""))[:64]
            template.category = category or template.category
            template.status = str(item.get("status", "")).upper()[:32]
            template.status_at = now
            template.components = components
            template.parameter_format = str(item.get("parameter_format") or "").upper()[:16]
            template.body_parameter_count, template.header_parameter_count = (
                body_count, header_count)
            template.synced_at = now
            template.save()
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


# --- Validation before sending --------------------------------------------------------------------
def template_for_send(*, organization, config, name: str = "", language: str = "",
                      use: str = "", with_parameters: bool = False) -> MessageTemplate | None:
    """The approved template a send may use, or TemplateError saying why not (its parameters
    are checked by template_params.params_check).

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
            if with_parameters:
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
    return template


def template_payload(*, name: str, language: str, components: list[dict]) -> dict:
    """The Graph `template` object (components from template_params.template_components)."""
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
