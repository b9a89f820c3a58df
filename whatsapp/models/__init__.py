"""The `whatsapp` app's models, one file per room; every model is re-exported here.

Import models from `whatsapp.models` everywhere outside this package; inside it, a file imports
its siblings by module (`from .connections import Connection`), never this package. Table
names are the seeds' (`db_table`), unchanged by the split.
"""

from .connections import Connection, ConnectionQuerySet, OrphanConnection, TokenExpiryNotice
from .conversations import (
    Contact,
    ContactIdentity,
    HistoryChunk,
    HistorySync,
    Message,
    MessageStatus,
)
from .events import LeadEvent, LeadEventStream
from .flags import AnalyticsEvent, FeatureFlag, FeatureFlagOverride
from .media import MessageMedia
from .numbers import PhoneNumber
from .onboarding import Onboarding
from .privacy import ErasureRequest
from .sending import (
    MessageTemplate,
    NumberUsage,
    OutboundEvent,
    OutboundMessage,
    SendMode,
    SendPolicy,
    TemplateStatusEvent,
)
from .webhooks import WebhookLog, WebhookLogQuerySet

__all__ = [
    "AnalyticsEvent",
    "PhoneNumber",
    "Connection",
    "ConnectionQuerySet",
    "ErasureRequest",
    "Contact",
    "ContactIdentity",
    "FeatureFlag",
    "FeatureFlagOverride",
    "HistoryChunk",
    "HistorySync",
    "LeadEvent",
    "LeadEventStream",
    "Message",
    "MessageMedia",
    "MessageStatus",
    "MessageTemplate",
    "NumberUsage",
    "Onboarding",
    "OrphanConnection",
    "OutboundEvent",
    "OutboundMessage",
    "SendMode",
    "SendPolicy",
    "TemplateStatusEvent",
    "TokenExpiryNotice",
    "WebhookLog",
    "WebhookLogQuerySet",
]
