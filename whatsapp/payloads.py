"""The typed boundary for Meta's webhook JSON: parsed once here, never walked elsewhere."""

import json
from dataclasses import dataclass, field, replace
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
        session_info = value.get("sessionInfo")
        session_info = session_info if isinstance(session_info, dict) else {}
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
            extra={k: v for k, v in value.items()
                   if k not in {"event", "waba_info", "sessionInfo"}},
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- Messages-family fields (messages, smb_message_echoes, history, state sync, user ids) ------
# Every getter below tolerates missing or mistyped optional keys: a malformed item degrades to
# empty strings instead of failing the whole (signed, otherwise valid) delivery.

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


@dataclass(frozen=True)
class Party:
    """A WhatsApp user as one webhook item describes them (any key may be missing)."""

    user_id: str = ""
    wa_id: str = ""
    username: str = ""
    profile_name: str = ""

    @classmethod
    def from_contact(cls, item: dict[str, Any]) -> "Party":
        profile = _dict(item.get("profile"))
        return cls(
            user_id=_str(item.get("user_id")),
            wa_id=_str(item.get("wa_id") or item.get("phone_number")),
            username=_str(profile.get("username") or item.get("username")),
            profile_name=_str(profile.get("name")),
        )

    @property
    def known(self) -> bool:
        return bool(self.user_id or self.wa_id)


MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


@dataclass(frozen=True)
class WaMessage:
    """One message item: inbound (`messages`), echo (`message_echoes`) or history thread item."""

    wamid: str
    type: str
    timestamp: int | None
    from_: str
    from_user_id: str
    to: str
    to_user_id: str
    body: str
    media_id: str
    reply_to_wamid: str
    target_wamid: str
    referral: dict[str, Any] | None
    errors: list[dict[str, Any]]
    history_status: str
    from_me: bool
    system: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "WaMessage":
        type_ = _str(item.get("type"))
        content = _dict(item.get(type_))
        history = _dict(item.get("history_context"))
        errors = _list(item.get("errors")) or _list(content.get("errors"))
        return cls(
            wamid=_str(item.get("id")),
            type=type_,
            timestamp=_int_or_none(item.get("timestamp")),
            from_=_str(item.get("from")),
            from_user_id=_str(item.get("from_user_id")),
            to=_str(item.get("to")),
            to_user_id=_str(item.get("to_user_id")),
            body=_message_text(type_, content),
            media_id=_str(content.get("id")) if type_ in MEDIA_TYPES else "",
            reply_to_wamid=_str(_dict(item.get("context")).get("id")),
            target_wamid=_str(content.get("original_message_id") or content.get("message_id"))
            if type_ in ("edit", "revoke", "reaction") else "",
            referral=_dict(item.get("referral")) or None,
            errors=errors,
            history_status=_str(history.get("status")).lower(),
            from_me=history.get("from_me") is True,
            system=content if type_ == "system" else {},
            raw=item,
        )


def _message_text(type_: str, content: dict[str, Any]) -> str:
    """The human-readable text of a message, whatever its type."""
    if type_ == "text":
        return _str(content.get("body"))
    if type_ in MEDIA_TYPES:
        return _str(content.get("caption") or content.get("filename"))
    if type_ == "edit":
        inner = _dict(content.get("message"))
        return _message_text(_str(inner.get("type")) or "text", _dict(inner.get(inner.get("type"))))
    if type_ == "reaction":
        return _str(content.get("emoji"))
    if type_ == "button":
        return _str(content.get("text") or content.get("payload"))
    if type_ == "interactive":
        reply = _dict(content.get(_str(content.get("type")))) or _dict(content.get("button_reply"))
        return _str(reply.get("title") or reply.get("body") or reply.get("id"))
    if type_ == "location":
        parts = [_str(content.get("name")), _str(content.get("address"))]
        text = ", ".join(p for p in parts if p)
        return text or f"{_str(content.get('latitude'))},{_str(content.get('longitude'))}"
    if type_ == "contacts":
        # `contacts` content is a list, not an object: handled by the caller via raw.
        return ""
    if type_ == "system":
        return _str(content.get("body"))
    return ""


def _contacts_text(item: dict[str, Any]) -> str:
    names = [_str(_dict(c.get("name")).get("formatted_name")) for c in _list(item.get("contacts"))]
    return ", ".join(n for n in names if n)


@dataclass(frozen=True)
class StatusItem:
    wamid: str
    status: str
    timestamp: int | None
    recipient_id: str
    recipient_user_id: str
    errors: list[dict[str, Any]]
    pricing: dict[str, Any] | None
    conversation: dict[str, Any] | None
    biz_opaque_callback_data: str
    raw: dict[str, Any]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "StatusItem":
        return cls(
            wamid=_str(item.get("id")),
            status=_str(item.get("status")).lower(),
            timestamp=_int_or_none(item.get("timestamp")),
            recipient_id=_str(item.get("recipient_id")),
            recipient_user_id=_str(item.get("recipient_user_id")),
            errors=_list(item.get("errors")),
            pricing=_dict(item.get("pricing")) or None,
            conversation=_dict(item.get("conversation")) or None,
            biz_opaque_callback_data=_str(item.get("biz_opaque_callback_data"))[:512],
            raw=item,
        )


def _messages(items: Any) -> list[WaMessage]:
    parsed = []
    for item in _list(items):
        message = WaMessage.from_item(item)
        if message.type == "contacts":
            message = replace(message, body=_contacts_text(item))
        if message.wamid:
            parsed.append(message)
    return parsed


@dataclass(frozen=True)
class MessagesValue:
    """`messages`, `smb_message_echoes` and history media follow-ups share this shape."""

    phone_number_id: str
    display_phone_number: str
    contacts: list[Party]
    messages: list[WaMessage]
    echoes: list[WaMessage]
    statuses: list[StatusItem]

    @classmethod
    def from_change(cls, change: Change) -> "MessagesValue":
        value = change.value
        metadata = _dict(value.get("metadata"))
        return cls(
            phone_number_id=_str(metadata.get("phone_number_id")),
            display_phone_number=_str(metadata.get("display_phone_number")),
            contacts=[Party.from_contact(c) for c in _list(value.get("contacts"))],
            messages=_messages(value.get("messages")),
            echoes=_messages(value.get("message_echoes")),
            statuses=[s for s in map(StatusItem.from_item, _list(value.get("statuses")))
                      if s.wamid and s.status],
        )

    def party(self, *, user_id: str, wa_id: str) -> Party:
        """The contacts[] entry describing this user, merged with what the item itself says."""
        for contact in self.contacts:
            if (user_id and contact.user_id == user_id) or (wa_id and contact.wa_id == wa_id):
                return Party(user_id=user_id or contact.user_id, wa_id=wa_id or contact.wa_id,
                             username=contact.username, profile_name=contact.profile_name)
        return Party(user_id=user_id, wa_id=wa_id)


@dataclass(frozen=True)
class HistoryThread:
    party: Party
    messages: list[WaMessage]


@dataclass(frozen=True)
class HistoryChunkData:
    phase: int
    chunk_order: int
    progress: int
    threads: list[HistoryThread]
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class HistoryValue:
    phone_number_id: str
    display_phone_number: str
    chunks: list[HistoryChunkData]
    # The follow-up media webhook carries `messages[]` / `message_echoes[]` instead of history.
    media: MessagesValue

    @classmethod
    def from_change(cls, change: Change) -> "HistoryValue":
        value = change.value
        metadata = _dict(value.get("metadata"))
        chunks = []
        for item in _list(value.get("history")):
            meta = _dict(item.get("metadata"))
            threads = []
            for thread in _list(item.get("threads")):
                context = _dict(thread.get("context"))
                party = Party.from_contact(context)
                if not party.wa_id:
                    party = Party(user_id=party.user_id, wa_id=_str(thread.get("id")),
                                  username=party.username)
                threads.append(
                    HistoryThread(party=party, messages=_messages(thread.get("messages")))
                )
            chunks.append(HistoryChunkData(
                phase=_int_or_none(meta.get("phase")) or 0,
                chunk_order=_int_or_none(meta.get("chunk_order")) or 0,
                progress=max(0, min(100, _int_or_none(meta.get("progress")) or 0)),
                threads=threads,
                errors=_list(item.get("errors")),
            ))
        return cls(
            phone_number_id=_str(metadata.get("phone_number_id")),
            display_phone_number=_str(metadata.get("display_phone_number")),
            chunks=chunks,
            media=MessagesValue.from_change(change),
        )


@dataclass(frozen=True)
class StateSyncItem:
    party: Party
    action: str
    full_name: str
    timestamp: int | None


@dataclass(frozen=True)
class StateSyncValue:
    phone_number_id: str
    items: list[StateSyncItem]

    @classmethod
    def from_change(cls, change: Change) -> "StateSyncValue":
        value = change.value
        items = []
        for item in _list(value.get("state_sync")):
            if _str(item.get("type")) not in ("contact", ""):
                continue
            contact = _dict(item.get("contact"))
            items.append(StateSyncItem(
                party=Party.from_contact(contact),
                action=_str(item.get("action")).lower(),
                full_name=_str(contact.get("full_name") or contact.get("first_name")),
                timestamp=_int_or_none(_dict(item.get("metadata")).get("timestamp")),
            ))
        return cls(phone_number_id=_phone_number_id(value), items=items)


@dataclass(frozen=True)
class UserIdChange:
    wa_id: str
    previous: str
    current: str
    timestamp: int | None


@dataclass(frozen=True)
class UserIdUpdateValue:
    phone_number_id: str
    contacts: list[Party]
    changes: list[UserIdChange]

    @classmethod
    def from_change(cls, change: Change) -> "UserIdUpdateValue":
        value = change.value
        changes = []
        for item in _list(value.get("user_id_update")):
            ids = _dict(item.get("user_id"))
            changes.append(UserIdChange(
                wa_id=_str(item.get("wa_id")),
                previous=_str(ids.get("previous")),
                current=_str(ids.get("current")),
                timestamp=_int_or_none(item.get("timestamp")),
            ))
        return cls(
            phone_number_id=_phone_number_id(value),
            contacts=[Party.from_contact(c) for c in _list(value.get("contacts"))],
            changes=[c for c in changes if c.previous and c.current],
        )


@dataclass(frozen=True)
class TemplateStatusUpdate:
    waba_id: str
    event: str
    template_id: str
    name: str
    language: str
    category: str
    reason: str
    info: dict[str, Any]
    time: int | None

    @classmethod
    def from_change(cls, change: Change) -> "TemplateStatusUpdate":
        value = change.value
        return cls(
            waba_id=change.entry_id,
            event=_str(value.get("event")).upper(),
            template_id=_str(value.get("message_template_id")),
            name=_str(value.get("message_template_name")),
            language=_str(value.get("message_template_language")),
            category=_str(value.get("message_template_category")),
            reason=_str(value.get("reason"))[:255],
            info={k: value[k] for k in ("rejection_info", "disable_info", "other_info")
                  if isinstance(value.get(k), dict)},
            time=change.entry_time,
        )


@dataclass(frozen=True)
class QualityUpdate:
    """`phone_number_quality_update`: no phone_number_id, so matched by display number + WABA."""

    waba_id: str
    display_phone_number: str
    event: str
    messaging_limit: str
    time: int | None

    @classmethod
    def from_change(cls, change: Change) -> "QualityUpdate":
        value = change.value
        return cls(
            waba_id=change.entry_id,
            display_phone_number=_str(value.get("display_phone_number")),
            event=_str(value.get("event")).upper(),
            # current_limit is the pre-2026 name of the same information.
            messaging_limit=_str(value.get("max_daily_conversations_per_business")
                                 or value.get("current_limit")),
            time=change.entry_time,
        )
