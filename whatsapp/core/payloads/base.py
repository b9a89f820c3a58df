"""The envelope of a delivery (entries, changes) and the small readers every value uses."""

import json
from dataclasses import dataclass, field
from typing import Any


class PayloadError(ValueError):
    """The body is not a WhatsApp webhook delivery we can read."""


@dataclass(frozen=True)
class Change:
    entry_id: str
    entry_time: int | None
    field: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    object: str
    changes: list[Change]
    # The parsed body itself, for handlers that need the whole delivery (parsed once, here).
    payload: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def fields(self) -> list[str]:
        return sorted({c.field for c in self.changes})


# Graph object ids (WABA, business portfolio, phone number) are numeric strings, 15–17 digits
# today; Meta documents no maximum, so we accept up to our columns' width (64) and refuse a
# longer one at this boundary, by name, instead of letting PostgreSQL (DataError) or a slice
# cut real data silently.
MAX_ID_LENGTH = 64


def graph_id(value: Any, name: str) -> str:
    """An id from the payload as text; PayloadError when it cannot be one of Meta's ids."""
    text = _str(value)
    if len(text) > MAX_ID_LENGTH:
        raise PayloadError(f"{name} has {len(text)} characters; Meta ids fit in "
                           f"{MAX_ID_LENGTH}.")
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def parse_delivery(body: bytes) -> Delivery:
    """The typed envelope of a raw body.

    U+0000 is stripped from every string: PostgreSQL text and jsonb cannot hold it (psycopg
    refuses it before the query), it carries nothing a person can see, and refusing the whole
    delivery would lose a lead's message for an invisible character. The raw body keeps the
    original bytes. JSON can only carry it escaped, so bodies without `\\u0000` skip the walk.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"Body is not JSON: {exc}") from exc
    if b"\\u0000" in body:
        data = _without_nul(data)
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise PayloadError("Body has no entry[] list.")
    changes = []
    for entry in data["entry"]:
        if not isinstance(entry, dict):
            raise PayloadError("entry[] item is not an object.")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise PayloadError("changes[] item has no value object.")
            changes.append(
                Change(
                    entry_id=str(entry.get("id", "")),
                    entry_time=_int_or_none(entry.get("time")),
                    field=str(change.get("field", "")),
                    value=change["value"],
                )
            )
    return Delivery(object=str(data.get("object", "")), changes=changes, payload=data)


@dataclass(frozen=True)
class AccountIds:
    """Meta's account-model ids a value carries (META-PLATFORM.md §0): the Messaging Account
    (phase 1: it keeps the old WABA id) and the WhatsApp Business Account of one number (WAAC,
    phase 2). Empty when absent, as in every delivery before 2027."""

    messaging_account_id: str = ""
    waac_id: str = ""


# Where Meta may put them: no payload carrying them is documented yet, so each is read at the
# value's top level, in `waba_info` (account_update) and in `metadata` (the messages family).
# `paid_messaging_account_id` is Meta's deprecated alias (to be gone by 2026-12-31).
_ACCOUNT_KEYS = {"messaging_account_id": ("messaging_account_id", "paid_messaging_account_id"),
                 "waac_id": ("waac_id",)}


def account_ids(value: dict[str, Any]) -> AccountIds:
    """The Messaging Account / WAAC ids of one change's value, wherever they sit."""
    places = (value, _dict(value.get("waba_info")), _dict(value.get("metadata")))
    found = {}
    for name, keys in _ACCOUNT_KEYS.items():
        found[name] = next((graph_id(place[key], key) for place in places for key in keys
                            if _str(place.get(key))), "")
    return AccountIds(**found)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)

# Fields routed by `metadata.phone_number_id` (parked while that number is not configured).
PHONE_ROUTED_FIELDS = frozenset(
    {"messages", "smb_message_echoes", "history", "smb_app_state_sync", "user_id_update"}
)


def _phone_number_id(value: dict[str, Any]) -> str:
    return graph_id(_dict(value.get("metadata")).get("phone_number_id"),
                    "metadata.phone_number_id")


def phone_number_ids(changes: list[Change]) -> list[str]:
    """Every phone_number_id a delivery's phone-routed changes refer to, sorted and unique."""
    return sorted({pnid for change in changes if change.field in PHONE_ROUTED_FIELDS
                   if (pnid := _phone_number_id(change.value))})


def addressed_accounts(changes: list[Change]) -> dict[str, tuple[set[str], set[str]]]:
    """Per phone_number_id of a delivery's phone-routed changes: the account ids Meta addressed
    them to (entry.id, and a Messaging Account id when one is named) and the WAAC ids named."""
    addressed: dict[str, tuple[set[str], set[str]]] = {}
    for change in changes:
        if change.field not in PHONE_ROUTED_FIELDS or not (
                pnid := _phone_number_id(change.value)):
            continue
        accounts, waacs = addressed.setdefault(pnid, (set(), set()))
        named = account_ids(change.value)
        accounts.update(i for i in (graph_id(change.entry_id, "entry.id"),
                                    named.messaging_account_id) if i)
        waacs.update(i for i in (named.waac_id,) if i)
    return addressed
