"""What each webhook change does, dispatched through plain dicts (field → function).

The one module that calls several rooms: account updates go to onboarding, messages and
history to conversations, and statuses to conversations then to sending (our sends learn
their fate). All of it runs inside the delivery's one transaction (`process.webhook_process`).
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from whatsapp.conversations import history, messages, numbers, routing
from whatsapp.conversations.bulk import collector_paused
from whatsapp.core.payloads import (
    AccountUpdate,
    Change,
    Delivery,
    HistoryValue,
    MessagesValue,
    QualityUpdate,
    StateSyncValue,
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
    UserIdUpdateValue,
)
from whatsapp.models import Connection
from whatsapp.onboarding import attribution, connections
from whatsapp.sending import statuses, template_events

logger = logging.getLogger(__name__)


class Context:
    """What handlers learn about the delivery as a whole (e.g. the tenant it belongs to)."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.organization_id = None
        # phone_number_id → routing.Route, filled (and locked) on first use by routing.route.
        self.routes: dict | None = None

    def attribute(self, organization_id) -> None:
        """The delivery's tenant is the first one any of its changes names."""
        self.organization_id = self.organization_id or organization_id


def _partner_added(update: AccountUpdate, ctx: Context) -> None:
    connection = attribution.connection_partner_added(update=update, payload=ctx.delivery.payload)
    ctx.attribute(connection.organization_id)


def _disconnect(update: AccountUpdate, ctx: Context) -> None:
    reason = update.event
    if update.disconnection_reason:
        reason = f"{update.event}: {update.disconnection_reason}"
    connection = connections.connection_disconnect(
        waba_id=update.waba_id,
        reason=reason,
        actor_label=attribution.WEBHOOK_ACTOR,
        details={"initiated_by": update.initiated_by} if update.initiated_by else None,
    )
    if connection:
        ctx.attribute(connection.organization_id)


def _record(update: AccountUpdate, ctx: Context) -> None:
    # ACCOUNT_RECONNECTED, PARTNER_APP_INSTALLED, violations…: the raw delivery is the record.
    Connection.objects.active().filter(waba_id=update.waba_id).touch()
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


def _routed(parse, ingest) -> Callable[[Change, Context], None]:
    """A handler for a field addressed to one of our numbers: parse the value at the typed
    boundary, route it by phone_number_id (parking it if the number is not ready), ingest it."""

    def handle(change: Change, ctx: Context) -> None:
        value = parse(change)
        route = routing.route(ctx, value.phone_number_id)
        ingest(route, value)
        routing.connection_touched(route)

    return handle


def _messages_and_statuses(route: routing.Route, value: MessagesValue) -> None:
    messages.messages_ingest(route, value)
    # The same statuses, seen from our sends: their status moves up (never back).
    statuses.outbound_statuses_apply(route.organization_id, value.statuses)


handle_messages = _routed(MessagesValue.from_change, _messages_and_statuses)
handle_message_echoes = _routed(MessagesValue.from_change, messages.echoes_ingest)
def _bulk(handler) -> Callable[[Change, Context], None]:
    """A handler for a large import (3 MB history chunks): the garbage collector paused."""

    def handle(change: Change, ctx: Context) -> None:
        with collector_paused():
            handler(change, ctx)

    return handle


handle_history = _bulk(_routed(HistoryValue.from_change, history.history_ingest))
handle_state_sync = _routed(StateSyncValue.from_change, history.state_sync_ingest)
handle_user_id_update = _routed(UserIdUpdateValue.from_change, history.user_id_update_ingest)


def _template_event(parse, record) -> Callable[[Change, Context], None]:
    """A handler for a template webhook (entry.id is the WABA): record it, name the tenant."""

    def handle(change: Change, ctx: Context) -> None:
        event = record(parse(change))
        if event:
            ctx.attribute(event.organization_id)

    return handle


handle_template_status = _template_event(TemplateStatusUpdate.from_change,
                                         template_events.template_status_record)
handle_template_category = _template_event(TemplateCategoryUpdate.from_change,
                                           template_events.template_category_record)
handle_template_quality = _template_event(TemplateQualityUpdate.from_change,
                                          template_events.template_quality_record)


def handle_quality_update(change: Change, ctx: Context) -> None:
    config = numbers.quality_update_apply(QualityUpdate.from_change(change))
    if config:
        ctx.attribute(config.organization_id)


FIELD_HANDLERS: dict[str, Callable[[Change, Context], None]] = {
    "account_update": handle_account_update,
    "messages": handle_messages,
    "smb_message_echoes": handle_message_echoes,
    "history": handle_history,
    "smb_app_state_sync": handle_state_sync,
    "user_id_update": handle_user_id_update,
    "message_template_status_update": handle_template_status,
    "template_category_update": handle_template_category,
    "message_template_quality_update": handle_template_quality,
    "phone_number_quality_update": handle_quality_update,
}


def dispatch(change: Change, ctx: Context) -> None:
    FIELD_HANDLERS.get(change.field, handle_stored_only)(change, ctx)


# Fields whose deliveries a drainer applies together (process.process_batch): live messages,
# statuses and echoes, most of the traffic. Everything else goes one delivery at a time.
BATCHED_FIELDS = ("messages", "smb_message_echoes")


def batchable(delivery: Delivery) -> bool:
    return bool(delivery.changes) and all(c.field in BATCHED_FIELDS for c in delivery.changes)


class NumbersBusy(Exception):
    """`dispatch_batch(wait=False)`: another transaction holds one of the numbers."""


def dispatch_batch(deliveries: list[Delivery], *, wait: bool = True
                   ) -> tuple[dict[int, int], list[int]]:
    """Applies batchable deliveries together, in the caller's one transaction: every number
    locked at once (sorted), per number one conversation_ingest (leads resolved at once, one
    insert-or-ignore for the messages, one UPDATE per target status), per organization one
    pass over our sends' statuses.

    Returns ({index: organization id} of the deliveries applied, [indexes left out]): a
    delivery naming a number that is not ready is left out, untouched, for the caller to
    process (and park) alone. With `wait` off, raises NumbersBusy at once (before any write)
    when another transaction holds one of the numbers.
    """
    parsed = [[(c.field, MessagesValue.from_change(c)) for c in d.changes] for d in deliveries]
    try:
        routes = routing.routes_lock(sorted({v.phone_number_id for changes in parsed
                                              for _, v in changes}), nowait=not wait)
    except routing.NumbersLocked as exc:
        raise NumbersBusy() from exc
    applied: dict[int, int] = {}
    left_out: list[int] = []
    per_number: dict[str, tuple[list, list]] = {}
    for i, changes in enumerate(parsed):
        # Each delivery's own account check (a number shared with another partner).
        addressed = routing.addressed_accounts(deliveries[i].changes)
        if not all(isinstance(routes.get(v.phone_number_id), routing.Route)
                   and routing.route_accepts(routes[v.phone_number_id],
                                             *addressed.get(v.phone_number_id, (set(), set())))
                   for _, v in changes):
            left_out.append(i)
            continue
        for field, value in changes:
            inbound, echoes = per_number.setdefault(value.phone_number_id, ([], []))
            (inbound if field == "messages" else echoes).append(value)
        applied[i] = routes[changes[0][1].phone_number_id].organization_id
    by_organization: dict[int, list] = defaultdict(list)
    for pnid in sorted(per_number):
        route, (inbound, echoes) = routes[pnid], per_number[pnid]
        messages.conversation_ingest(route, inbound, echoes)
        by_organization[route.organization_id] += [s for v in inbound for s in v.statuses]
        routing.connection_touched(route)
    for organization_id, items in by_organization.items():
        statuses.outbound_statuses_apply(organization_id, items)
    return applied, left_out
