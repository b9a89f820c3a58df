"""Routing and parking: which configured number (and so which tenant) a change is for.

A change is routed by (account, phone number id): its number must be configured AND Meta must
have addressed it to that number's own connection (entry.id is the WABA, i.e. the Messaging
Account, or the Messaging Account it names; and the number's WAAC when both are known). Since
Meta's account model lets one number be shared with several partners, each with its own
Messaging Account (META-PLATFORM.md §0), a delivery for another account's use of a number we
hold is parked for support, never handed to the tenant that holds the number.

Concurrency: the number rows a delivery touches are locked (sorted, so two deliveries never
deadlock on them), which serializes the ingestion of one number and keeps its counters exact."""

from dataclasses import dataclass

from django.db import OperationalError
from django.utils import timezone

from whatsapp.core.payloads import (
    addressed_accounts,
    phone_number_ids,
)
from whatsapp.models import (
    Connection,
    PhoneNumber,
)


class Parked(Exception):
    """The delivery refers to a number that is not configured (yet, or by nobody)."""

    def __init__(self, phone_number_id: str, reason: str) -> None:
        super().__init__(reason)
        self.phone_number_id = phone_number_id
        self.reason = reason


# PostgreSQL's lock_not_available (a NOWAIT lock that is taken).
LOCK_NOT_AVAILABLE = "55P03"


class NumbersLocked(Exception):
    """`routes_lock(nowait=True)`: another transaction holds one of the numbers' rows."""


@dataclass
class Route:
    config: PhoneNumber
    organization_id: int


def route(ctx, phone_number_id: str) -> Route:
    """The configured number a change is for; parks the whole delivery otherwise.

    On first use, locks every number the delivery mentions in sorted order and checks them
    all: a delivery spanning several numbers is applied entirely or parked entirely (on the
    first unconfigured number; it re-parks on the next one if that is still not ready).
    """
    if ctx.routes is None:
        ctx.routes = {}
        ids = phone_number_ids(ctx.delivery.changes)
        found = routes_lock(ids, addressed_accounts(ctx.delivery.changes))
        for pnid in ids:
            if isinstance(found[pnid], Parked):
                raise found[pnid]
            ctx.routes[pnid] = found[pnid]
        if ctx.routes:
            ctx.attribute(ctx.routes[ids[0]].organization_id)
    if phone_number_id not in ctx.routes:
        raise Parked(phone_number_id, f"phone number {phone_number_id or '(none)'} is unknown")
    return ctx.routes[phone_number_id]


def routes_lock(ids: list[str], addressed: dict | None = None, *, nowait: bool = False
                ) -> dict[str, "Route | Parked"]:
    """Locks the numbers `ids` names (sorted: never a deadlock between two deliveries) and
    returns, for each, its Route or the Parked reason it cannot be ingested yet. `addressed`
    (addressed_accounts of one delivery) also checks which account the delivery is for.
    `nowait`: raises NumbersLocked instead of waiting for a number another transaction holds
    (the transaction must then be rolled back)."""
    query = (PhoneNumber.objects.select_for_update(of=("self",), nowait=nowait)
             .select_related("connection").filter(phone_number_id__in=ids)
             .order_by("phone_number_id"))
    try:
        phone_numbers = {c.phone_number_id: c for c in query}
    except OperationalError as exc:
        if nowait and getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise NumbersLocked() from exc
        raise
    found: dict[str, Route | Parked] = {}
    for pnid in ids:
        accounts, waacs = (addressed or {}).get(pnid, (set(), set()))
        try:
            found[pnid] = _route_or_park(pnid, phone_numbers.get(pnid), accounts, waacs)
            _learn_waac(found[pnid].config, waacs)
        except Parked as exc:
            found[pnid] = exc
    return found


def route_accepts(route_: Route, accounts: set[str], waacs: set[str]) -> bool:
    """Whether a delivery addressed to `accounts` / `waacs` may go to this number's tenant
    (the batch path: numbers locked once for many deliveries, each checked on its own)."""
    try:
        _check_accounts(route_.config.phone_number_id, route_.config, accounts, waacs)
    except Parked:
        return False
    _learn_waac(route_.config, waacs)
    return True


def _route_or_park(pnid: str, config: PhoneNumber | None, accounts: set[str],
                   waacs: set[str]) -> Route:
    if config is None:
        raise Parked(pnid, f"phone number {pnid} is unknown: no connection owns it yet")
    organization_id = config.organization_id or config.connection.organization_id
    if organization_id is None or config.connection.status == Connection.Status.DISCONNECTED:
        raise Parked(pnid, f"phone number {pnid} belongs to no organization "
                           f"(connection {config.connection.status})")
    _check_accounts(pnid, config, accounts, waacs)
    if config.status != PhoneNumber.Status.CONFIGURED:
        raise Parked(pnid, f"phone number {pnid} is not configured yet ({config.status})")
    return Route(config=config, organization_id=organization_id)


def _check_accounts(pnid: str, config: PhoneNumber, accounts: set[str], waacs: set[str]) -> None:
    """A delivery for another account (a number shared with several partners or tenants) is
    never routed to this number's tenant: Parked."""
    foreign = accounts - config.connection.account_ids()
    if foreign:
        raise Parked(pnid, f"phone number {pnid} belongs to WABA {config.connection.waba_id}; "
                           f"this delivery is for account {', '.join(sorted(foreign))}: "
                           f"not routed to another account's tenant")
    if config.waac_id and waacs - {config.waac_id}:
        raise Parked(pnid, f"phone number {pnid} is WAAC {config.waac_id}; this delivery names "
                           f"WAAC {', '.join(sorted(waacs))}: not routed")


def _learn_waac(config: PhoneNumber, waacs: set[str]) -> None:
    """The number's WAAC, the first time a delivery addressed to its own account names one."""
    if not config.waac_id and len(waacs) == 1:
        config.waac_id = next(iter(waacs))
        PhoneNumber.objects.filter(pk=config.pk, waac_id="").update(waac_id=config.waac_id)


def connection_touched(route_: Route) -> None:
    connection, now = route_.config.connection, timezone.now()
    # The row was just read: skip the UPDATE entirely when it is known to be recent.
    if (connection.last_webhook_at is None
            or now - connection.last_webhook_at >= Connection.TOUCH_EVERY):
        Connection.objects.filter(pk=connection.pk).touch(now)
        connection.last_webhook_at = now
