"""Lead events (whatsapp.events) and the human takeover, read from the environment like the
rest of `config.settings.base` (which imports this module last). README, "Lead events"."""

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()  # the .env file was read by base, into the process environment

# Every event is POSTed here (JSON, Standard Webhooks signature); empty = not sent over HTTP.
LEAD_EVENTS_URL = env("LEAD_EVENTS_URL", default="")
# The signing secret: `whsec_<base64>` (the Standard Webhooks form; the key is the decoded
# bytes) or any other string (its UTF-8 bytes are the key). Required with LEAD_EVENTS_URL.
LEAD_EVENTS_SECRET = env("LEAD_EVENTS_SECRET", default="")
if LEAD_EVENTS_URL and not LEAD_EVENTS_SECRET:
    raise ImproperlyConfigured("LEAD_EVENTS_URL is set but LEAD_EVENTS_SECRET is empty: events "
                               "are never sent unsigned.")
# Seconds to wait after each failed attempt; after the last one the event is dead (replayable).
# Default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 24 h, 24 h (about 3.3 days, 10 attempts).
LEAD_EVENTS_RETRY_SCHEDULE = [
    float(s) for s in env.list("LEAD_EVENTS_RETRY_SCHEDULE",
                               default=["5", "300", "1800", "7200", "18000", "36000", "36000",
                                        "86400", "86400"])
]
LEAD_EVENTS_TIMEOUT_SECONDS = env.float("LEAD_EVENTS_TIMEOUT_SECONDS", default=10.0)
# In-process subscribers: "type=dotted.path" items, comma-separated ("*" = every type), e.g.
# LEAD_EVENT_SUBSCRIBERS=message.received=assistant.leads.on_message,*=assistant.log.on_event
# Code may also call whatsapp.events.subscribe(type, function) from an AppConfig.ready().
LEAD_EVENT_SUBSCRIBERS: dict[str, list[str]] = {}
for _item in env.list("LEAD_EVENT_SUBSCRIBERS", default=[]):
    _type, _, _path = _item.partition("=")
    if not _path:
        raise ImproperlyConfigured(f"LEAD_EVENT_SUBSCRIBERS item {_item!r} is not type=path.")
    LEAD_EVENT_SUBSCRIBERS.setdefault(_type.strip(), []).append(_path.strip())
# A subscriber's task is retried this many times (backing off up to an hour), then given up.
LEAD_EVENT_SUBSCRIBER_RETRIES = env.int("LEAD_EVENT_SUBSCRIBER_RETRIES", default=10)

# A conversation a person took over from the phone app goes back to automation after this many
# hours without a new message from the phone app (beat, every 5 minutes).
WHATSAPP_HUMAN_TAKEOVER_HOURS = env.float("WHATSAPP_HUMAN_TAKEOVER_HOURS", default=12)
