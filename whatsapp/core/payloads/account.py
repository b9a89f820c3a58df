"""Values without a phone number id: account_update, template status, category and quality
updates, number quality updates."""

from dataclasses import dataclass, field
from typing import Any

from .base import AccountIds, Change, _int_or_none, _str, account_ids, graph_id


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
    # Messaging Account / WAAC ids, when Meta sends them (account model, 2027).
    accounts: AccountIds = field(default_factory=AccountIds)

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
            waba_id = graph_id(waba_info.get("waba_id"), "waba_info.waba_id")
            owner = graph_id(waba_info.get("owner_business_id"), "waba_info.owner_business_id")
            partner = graph_id(change.entry_id, "entry.id")
        else:
            waba_id, owner, partner = graph_id(change.entry_id, "entry.id"), "", ""
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
            accounts=account_ids(value),
        )


def _template_of(change: Change) -> dict:
    """The template a template webhook is about, and when Meta sent it."""
    value = change.value
    return {"waba_id": change.entry_id, "template_id": _str(value.get("message_template_id")),
            "name": _str(value.get("message_template_name")),
            "language": _str(value.get("message_template_language")),
            "time": change.entry_time}


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
            **_template_of(change),
            event=_str(value.get("event")).upper(),
            category=_str(value.get("message_template_category")),
            reason=_str(value.get("reason"))[:255],
            info={k: value[k] for k in ("rejection_info", "disable_info", "other_info")
                  if isinstance(value.get(k), dict)},
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


@dataclass(frozen=True)
class TemplateCategoryUpdate:
    """`template_category_update`: Meta re-categorises a template (META-PLATFORM.md §0).

    Completed change: `previous_category` + `new_category`. Announced change: `correct_category`
    + `new_category` + `category_update_timestamp` (when it takes effect)."""

    waba_id: str
    template_id: str
    name: str
    language: str
    previous_category: str
    new_category: str
    correct_category: str
    effective_at: int | None
    time: int | None

    @classmethod
    def from_change(cls, change: Change) -> "TemplateCategoryUpdate":
        value = change.value
        return cls(
            **_template_of(change),
            previous_category=_str(value.get("previous_category")).upper(),
            new_category=_str(value.get("new_category")).upper(),
            correct_category=_str(value.get("correct_category")).upper(),
            effective_at=_int_or_none(value.get("category_update_timestamp")),
        )

    @property
    def is_announcement(self) -> bool:
        return bool(self.correct_category or self.effective_at) and not self.previous_category


@dataclass(frozen=True)
class TemplateQualityUpdate:
    """`message_template_quality_update`: GREEN, YELLOW, RED or UNKNOWN."""

    waba_id: str
    template_id: str
    name: str
    language: str
    previous_score: str
    new_score: str
    time: int | None

    @classmethod
    def from_change(cls, change: Change) -> "TemplateQualityUpdate":
        value = change.value
        return cls(
            **_template_of(change),
            previous_score=_str(value.get("previous_quality_score")).upper(),
            new_score=_str(value.get("new_quality_score")).upper(),
        )
