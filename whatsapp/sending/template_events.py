"""What Meta reports about a WABA's templates after approval, applied to our copy of them:
status (`message_template_status_update`), category (`template_category_update`) and quality
(`message_template_quality_update`). Each webhook is also kept as a `TemplateStatusEvent`
(history for support, and idempotence: the same event twice is one row); the newest event wins.

A template Meta moved to MARKETING costs more than the UTILITY it was approved as, so
automation stops sending it until a person confirms the new category in the admin
(`template_category_confirm`); a person's own send still goes (`rules.template_refused`)."""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from whatsapp.core.payloads import (
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
)
from whatsapp.core.phones import at
from whatsapp.models import Connection, MessageTemplate, TemplateStatusEvent

logger = logging.getLogger(__name__)

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
# The events of the other two fields, in the same history table.
CATEGORY_CHANGED = "CATEGORY_UPDATE"
CATEGORY_ANNOUNCED = "CATEGORY_UPDATE_UPCOMING"
QUALITY_CHANGED = "QUALITY_UPDATE"
MARKETING = "MARKETING"


def _older(when: datetime | None, than: datetime | None) -> bool:
    return bool(when and than and when < than)


def _event_store(*, waba_id: str, template_id: str, event: str, when: datetime | None,
                 name: str, language: str, category: str = "", reason: str = "",
                 info: dict | None = None) -> TemplateStatusEvent:
    connection = Connection.objects.active().filter(waba_id=waba_id).first()
    stored, _ = TemplateStatusEvent.objects.get_or_create(
        waba_id=waba_id, template_id=template_id, event=event, event_at=when,
        defaults={
            "connection": connection,
            "organization_id": connection.organization_id if connection else None,
            "template_name": name[:512], "language": language[:16], "category": category[:32],
            "reason": reason[:255], "info": info or {},
        },
    )
    if connection:
        Connection.objects.filter(pk=connection.pk).touch()
    return stored


def _template_of(event: TemplateStatusEvent, category: str | None = None
                 ) -> MessageTemplate | None:
    """The template an event is about (locked), created from the event when never synced
    (with `category`, or the event's)."""
    template = (MessageTemplate.objects.select_for_update()
                .filter(waba_id=event.waba_id, template_id=event.template_id).first())
    if template is None and event.template_name and event.language:
        template, _created = MessageTemplate.objects.get_or_create(
            waba_id=event.waba_id, name=event.template_name[:512], language=event.language,
            defaults={"organization_id": event.organization_id, "connection": event.connection,
                      "template_id": event.template_id,
                      "category": event.category if category is None else category})
        template = MessageTemplate.objects.select_for_update().get(pk=template.pk)
    return template


# --- Status ---------------------------------------------------------------------------------------
def template_status_record(update: TemplateStatusUpdate) -> TemplateStatusEvent | None:
    if not update.template_id or not update.event:
        logger.warning("message_template_status_update without template id/event: stored only")
        return None
    event = _event_store(waba_id=update.waba_id, template_id=update.template_id,
                         event=update.event, when=at(update.time), name=update.name,
                         language=update.language, category=update.category,
                         reason=update.reason, info=update.info)
    template_status_follow(event)
    return event


def template_status_follow(event: TemplateStatusEvent | None) -> None:
    """Applies a stored `message_template_status_update` to the template (newest event wins)."""
    if event is None:
        return
    new_status = EVENT_STATUS.get(event.event, event.event)
    template = _template_of(event)
    if template is None or new_status is None or _older(event.event_at, template.status_at):
        return
    template.status = new_status[:32]
    template.status_at = event.event_at or timezone.now()
    template.status_reason = event.reason[:255]
    template.template_id = template.template_id or event.template_id
    template.save(update_fields=["status", "status_at", "status_reason", "template_id",
                                 "updated_at"])


# --- Category -------------------------------------------------------------------------------------
def template_category_record(update: TemplateCategoryUpdate) -> TemplateStatusEvent | None:
    """Records an announced or completed re-categorisation and applies it to the template."""
    if not update.template_id or not update.new_category:
        logger.warning("template_category_update without template id/category: stored only")
        return None
    when = at(update.time)
    info = {k: v for k, v in (("previous_category", update.previous_category),
                              ("new_category", update.new_category),
                              ("correct_category", update.correct_category),
                              ("category_update_timestamp", update.effective_at)) if v}
    event = _event_store(waba_id=update.waba_id, template_id=update.template_id,
                         event=CATEGORY_ANNOUNCED if update.is_announcement else CATEGORY_CHANGED,
                         when=when, name=update.name, language=update.language,
                         category=update.new_category, info=info)
    # Never synced: it had the category it is said to leave.
    template = _template_of(event, category=update.previous_category)
    if template is None:
        return event
    if update.is_announcement:
        if not _older(when, template.category_changed_at):
            template.upcoming_category = update.new_category[:32]
            template.upcoming_category_at = at(update.effective_at)
            template.save(update_fields=["upcoming_category", "upcoming_category_at",
                                         "updated_at"])
        return event
    if not _older(when, template.category_changed_at):
        category_change_apply(template, previous=update.previous_category or template.category,
                              new=update.new_category, when=when or timezone.now())
        template.save()
    return event


def category_change_apply(template: MessageTemplate, *, previous: str, new: str,
                          when: datetime) -> None:
    """The template's category is now `new` (from a webhook or a sync); not saved here.

    Becoming MARKETING from another category needs a person's confirmation before automation
    sends it again; any other change lifts a pending confirmation."""
    previous, new = previous.upper()[:32], new.upper()[:32]
    # Became marketing just now, from a known other category (the same change seen again, from
    # a retry or a sync, finds the template already MARKETING: no news).
    before = previous or template.category
    needs = new == MARKETING and template.category != MARKETING and before not in ("", MARKETING)
    template.category = new
    template.category_changed_at = when
    if previous and previous != new:
        template.previous_category = previous
    if template.upcoming_category == new:
        template.upcoming_category, template.upcoming_category_at = "", None
    if needs and not template.category_confirmation_required:
        template.category_confirmation_required = True
        template.category_confirmed_at, template.category_confirmed_by = None, None
    elif new != MARKETING:
        template.category_confirmation_required = False


@transaction.atomic
def template_category_confirm(*, template_id: int, user) -> bool:
    """A person accepts the template's new category: automation may send it again. False when
    there was nothing to confirm."""
    template = MessageTemplate.objects.select_for_update().get(pk=template_id)
    if not template.category_confirmation_required:
        return False
    template.category_confirmation_required = False
    template.category_confirmed_at = timezone.now()
    template.category_confirmed_by = user
    template.save(update_fields=["category_confirmation_required", "category_confirmed_at",
                                 "category_confirmed_by", "updated_at"])
    logger.info("Template %s: new category %s confirmed by user %s", template.pk,
                template.category, getattr(user, "pk", None))
    return True


# --- Quality --------------------------------------------------------------------------------------
def template_quality_record(update: TemplateQualityUpdate) -> TemplateStatusEvent | None:
    if not update.template_id or not update.new_score:
        logger.warning("message_template_quality_update without template id/score: stored only")
        return None
    when = at(update.time)
    event = _event_store(waba_id=update.waba_id, template_id=update.template_id,
                         event=QUALITY_CHANGED, when=when, name=update.name,
                         language=update.language, reason=update.new_score,
                         info={"previous_quality_score": update.previous_score,
                               "new_quality_score": update.new_score})
    template = _template_of(event)
    if template is not None and not _older(when, template.quality_score_at):
        template.quality_score = update.new_score[:16]
        template.quality_score_at = when or timezone.now()
        template.save(update_fields=["quality_score", "quality_score_at", "updated_at"])
    return event
