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


def parse_delivery(body: bytes) -> Delivery:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"Body is not JSON: {exc}") from exc
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
    return _str(_dict(value.get("metadata")).get("phone_number_id"))


def phone_number_ids(changes: list[Change]) -> list[str]:
    """Every phone_number_id a delivery's phone-routed changes refer to, sorted and unique."""
    return sorted({pnid for change in changes if change.field in PHONE_ROUTED_FIELDS
                   if (pnid := _phone_number_id(change.value))})
