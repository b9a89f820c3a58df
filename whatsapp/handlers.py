"""What each webhook change does, dispatched through plain dicts (field → function)."""

import logging
from collections.abc import Callable

from . import services
from .payloads import AccountUpdate, Change

logger = logging.getLogger(__name__)


class Context:
    """What handlers learn about the delivery as a whole (e.g. the tenant it belongs to)."""

    def __init__(self, payload: dict | None = None) -> None:
        self.payload = payload
        self.organization_id = None


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


FIELD_HANDLERS: dict[str, Callable[[Change, Context], None]] = {
    "account_update": handle_account_update,
}


def dispatch(change: Change, ctx: Context) -> None:
    FIELD_HANDLERS.get(change.field, handle_stored_only)(change, ctx)
