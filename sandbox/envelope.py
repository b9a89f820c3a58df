"""The envelope of a webhook delivery as Meta shapes it, and the ids every event shares.

`Target` says who an event is about; `envelope()` batches changes into entries and `wire()`
makes the exact bytes Meta signs."""

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Target:
    """The ids an event is about; defaults are the fixtures' made-up ids."""

    partner_business_id: str = "810000000000001"
    partner_app_id: str = "920000000000001"
    waba_id: str = "102000000000101"
    owner_business_id: str = "203000000000101"
    phone_number_id: str = "304000000000101"
    display_phone_number: str = "5511940001234"  # digits, as webhooks carry it
    tracking_code: str = ""
    now: int = field(default_factory=lambda: int(time.time()))
    # For statuses of a message the product sent.
    wamid: str = ""
    recipient: str = "5511987654321"
    # A send to a username-only user (`recipient` = BSUID, no phone number).
    recipient_user_id: str = ""
    biz_opaque_callback_data: str = ""


@dataclass
class Change:
    entry_id: str
    field: str
    value: dict[str, Any]
    time: int | None = None  # only account_update, templates and quality carry entry.time

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.entry_id}
        if self.time is not None:
            entry["time"] = self.time
        entry["changes"] = [{"value": self.value, "field": self.field}]
        return entry


def envelope(changes: list[Change]) -> dict[str, Any]:
    """One delivery; several changes of the same entry id share that entry (Meta's batching)."""
    entries: list[dict[str, Any]] = []
    by_id: dict[tuple[str, int | None], dict[str, Any]] = {}
    for change in changes:
        key = (change.entry_id, change.time)
        if key in by_id:
            by_id[key]["changes"].extend(change.entry()["changes"])
        else:
            by_id[key] = change.entry()
            entries.append(by_id[key])
    return {"object": "whatsapp_business_account", "entry": entries}


def wire(body: dict[str, Any]) -> bytes:
    """Compact JSON with non-ASCII as lowercase \\uXXXX escapes: the bytes Meta signs (§5.1)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def user_id_for(number: str) -> str:
    """A stable BSUID per user number, so the same person keeps the same id across events."""
    digest = int(hashlib.sha256(number.encode()).hexdigest(), 16)
    return f"BR.{digest % 10**19:019d}"


def _metadata(t: Target) -> dict[str, str]:
    return {"display_phone_number": t.display_phone_number, "phone_number_id": t.phone_number_id}


def _contact(name: str, number: str) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": number, "user_id": user_id_for(number)}
