"""Coexistence values: `history` chunks and `smb_app_state_sync` address-book changes."""

from dataclasses import dataclass
from typing import Any

from .base import Change, _dict, _int_or_none, _list, _phone_number_id, _str
from .messages import MessagesValue, Party, WaMessage, _messages


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
