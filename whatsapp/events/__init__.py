"""The events room: lead events for the qualification assistant (a transactional outbox).

A room writes a fact and its event in one transaction (`outbox.emit`); after the commit a
dispatcher (`delivery`) hands each event to the registered in-process subscribers (each in its
own Celery task, `subscribers`) and POSTs it, signed (`signing`), to LEAD_EVENTS_URL, in order
per conversation, retried for days, dead-lettered and replayable. Payloads are built by
`payloads` and described, versioned, in docs/lead-events.schema.json. This room knows models
and core only: conversations, sending and onboarding call it.

    from whatsapp import events
    events.subscribe("message.received", "assistant.leads.on_message")
"""

from .subscribers import subscribe

__all__ = ["subscribe"]
