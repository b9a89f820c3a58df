"""The `messages` / `smb_message_echoes` values: parties, messages and statuses."""

from dataclasses import dataclass, replace
from typing import Any

from .base import Change, _dict, _int_or_none, _list, _phone_number_id, _str


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
