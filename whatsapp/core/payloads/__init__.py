"""The typed boundary for Meta's webhook JSON: parsed once here, never walked elsewhere.

`parse_delivery` reads the envelope; each field's value has a `from_change` reader in the
module of its kind. Everything is re-exported here: import from `whatsapp.core.payloads`.
"""

from .account import (
    AccountUpdate,
    QualityUpdate,
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
)
from .base import (
    AccountIds,
    Change,
    Delivery,
    PayloadError,
    account_ids,
    addressed_accounts,
    parse_delivery,
    phone_number_ids,
)
from .history import HistoryChunkData, HistoryThread, HistoryValue, StateSyncItem, StateSyncValue
from .messages import (
    MEDIA_TYPES,
    MessagesValue,
    Party,
    StatusItem,
    UserIdChange,
    UserIdUpdateValue,
    WaMessage,
)

__all__ = [
    "MEDIA_TYPES", "AccountIds", "AccountUpdate", "Change", "Delivery", "HistoryChunkData",
    "HistoryThread", "HistoryValue", "MessagesValue", "Party", "PayloadError", "QualityUpdate",
    "StateSyncItem", "StateSyncValue", "StatusItem", "TemplateCategoryUpdate",
    "TemplateQualityUpdate", "TemplateStatusUpdate", "UserIdChange", "UserIdUpdateValue",
    "WaMessage", "account_ids", "addressed_accounts", "parse_delivery", "phone_number_ids",
]
