"""The webhooks room: Meta's deliveries from the signed request to the rooms that apply them.

`signatures` (HMAC of the raw body), `intake` (store byte for byte, then announce; the
sweeper), `inbox` (the Redis list between the web and the drainers), `process` (claim, one
transaction, processed / parked / failed / dead), `lease` (the heartbeat that renews an
attempt's lease while it works), `dispatch` (field → room: the only module that calls several
rooms), `replay` and `retention` (raw bodies removed after WHATSAPP_WEBHOOK_RETENTION_DAYS).
"""
