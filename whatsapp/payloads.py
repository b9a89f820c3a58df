"""The typed boundary for Meta's webhook JSON: parsed once here, never walked elsewhere."""

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
    return Delivery(object=str(data.get("object", "")), changes=changes)


@dataclass(frozen=True)
class AccountUpdate:
    """`account_update` in both documented shapes (with `waba_info`, or WABA in entry.id)."""

    event: str
    waba_id: str
    owner_business_id: str
    partner_business_id: str
    tracking_code: str
    phone_number: str
    disconnection_reason: str
    initiated_by: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_change(cls, change: Change) -> "AccountUpdate":
        value = change.value
        waba_info = value.get("waba_info") if isinstance(value.get("waba_info"), dict) else None
        session_info = value.get("sessionInfo") if isinstance(value.get("sessionInfo"), dict) else {}
        disconnection = (
            value.get("disconnection_info")
            if isinstance(value.get("disconnection_info"), dict) else {}
        )
        if waba_info is not None:
            # PARTNER_* events: entry.id is our own business portfolio, never the WABA.
            waba_id = str(waba_info.get("waba_id") or "")
            owner = str(waba_info.get("owner_business_id") or "")
            partner = change.entry_id
        else:
            waba_id, owner, partner = change.entry_id, "", ""
        return cls(
            event=str(value.get("event") or ""),
            waba_id=waba_id,
            owner_business_id=owner,
            partner_business_id=partner,
            tracking_code=str(session_info.get("trackingCode") or ""),
            phone_number=str(value.get("phone_number") or ""),
            disconnection_reason=str(disconnection.get("reason") or ""),
            initiated_by=str(disconnection.get("initiated_by") or ""),
            extra={k: v for k, v in value.items() if k not in {"event", "waba_info", "sessionInfo"}},
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
