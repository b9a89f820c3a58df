"""What each webhook change does, dispatched through plain dicts (field → function)."""

import logging
from collections.abc import Callable

from . import ingestion, services
from .payloads import (
    AccountUpdate,
    Change,
    HistoryValue,
    MessagesValue,
    QualityUpdate,
    StateSyncValue,
    TemplateStatusUpdate,
    UserIdUpdateValue,
)

logger = logging.getLogger(__name__)


class Context:
    """What handlers learn about the delivery as a whole (e.g. the tenant it belongs to)."""

    def __init__(self, payload: dict | None = None) -> None:
        self.payload = payload
        self.organization_id = None
        # phone_number_id → ingestion.Route, filled (and locked) on first use by ingestion.route.
        self.routes: dict | None = None


def _partner_added(update: AccountUpdate, ctx: Context) -> None:
    connection = services.connection_partner_added(update=update, payload=ctx.payload)
    ctx.organization_id = ctx.organization_id or connection.organization_id


def _disconnect(update: AccountUpdate, ctx: Context) -> None:
    reason = update.event
    if update.disconnection_reason:
        reason = f"{update.event}: {update.disconnection_reason}"
    connection = services.connection_disconnect(
        waba_id=update.waba_id,
        reason=reason,
        actor_label=services.WEBHOOK_ACTOR,
        details={"initiated_by": update.initiated_by} if update.initiated_by else None,
    )
    if connection:
        ctx.organization_id = ctx.organization_id or connection.organization_id


def _record(update: AccountUpdate, ctx: Context) -> None:
    # ACCOUNT_RECONNECTED, PARTNER_APP_INSTALLED, violations…: the raw delivery is the record.
    services.connection_touch(waba_id=update.waba_id)
    logger.info("account_update %s for WABA %s recorded", update.event, update.waba_id)


ACCOUNT_UPDATE_EVENTS: dict[str, Callable[[AccountUpdate, Context], None]] = {
    "PARTNER_ADDED": _partner_added,
    "PARTNER_REMOVED": _disconnect,
    "PARTNER_APP_UNINSTALLED": _disconnect,
    "ACCOUNT_OFFBOARDED": _disconnect,
}


def handle_account_update(change: Change, ctx: Context) -> None:
    update = AccountUpdate.from_change(change)
    if not update.waba_id:
        logger.warning("account_update %s without a WABA id: stored only", update.event)
        return
    ACCOUNT_UPDATE_EVENTS.get(update.event, _record)(update, ctx)


def handle_stored_only(change: Change, ctx: Context) -> None:
    """Fields we acknowledge and keep in the raw log (unknown or not yet ingested)."""


def handle_messages(change: Change, ctx: Context) -> None:
    value = MessagesValue.from_change(change)
    route = ingestion.route(ctx, value.phone_number_id)
    ingestion.messages_ingest(route, value)
    ingestion.connection_touched(route)


def handle_message_echoes(change: Change, ctx: Context) -> None:
    value = MessagesValue.from_change(change)
    route = ingestion.route(ctx, value.phone_number_id)
    ingestion.echoes_ingest(route, value)
    ingestion.connection_touched(route)


def handle_history(change: Change, ctx: Context) -> None:
    value = HistoryValue.from_change(change)
    route = ingestion.route(ctx, value.phone_number_id)
    ingestion.history_ingest(route, value)
    ingestion.connection_touched(route)


def handle_state_sync(change: Change, ctx: Context) -> None:
    value = StateSyncValue.from_change(change)
    route = ingestion.route(ctx, value.phone_number_id)
    ingestion.state_sync_ingest(route, value)
    ingestion.connection_touched(route)


def handle_user_id_update(change: Change, ctx: Context) -> None:
    value = UserIdUpdateValue.from_change(change)
    route = ingestion.route(ctx, value.phone_number_id)
    ingestion.user_id_update_ingest(route, value)
    ingestion.connection_touched(route)


def handle_template_status(change: Change, ctx: Context) -> None:
    event = ingestion.template_status_record(TemplateStatusUpdate.from_change(change))
    if event and event.organization_id:
        ctx.organization_id = ctx.organization_id or event.organization_id


def handle_quality_update(change: Change, ctx: Context) -> None:
    config = ingestion.quality_update_apply(QualityUpdate.from_change(change))
    if config and config.organization_id:
        ctx.organization_id = ctx.organization_id or config.organization_id


FIELD_HANDLERS: dict[str, Callable[[Change, Context], None]] = {
    "account_update": handle_account_update,
    "messages": handle_messages,
    "smb_message_echoes": handle_message_echoes,
    "history": handle_history,
    "smb_app_state_sync": handle_state_sync,
    "user_id_update": handle_user_id_update,
    "message_template_status_update": handle_template_status,
    "phone_number_quality_update": handle_quality_update,
}


def dispatch(change: Change, ctx: Context) -> None:
    FIELD_HANDLERS.get(change.field, handle_stored_only)(change, ctx)
