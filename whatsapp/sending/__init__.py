"""The sending room: rules, the queue, the send worker, pacing, templates, statuses → sends.

A send is checked against the rules (`rules`), stored and enqueued (`queue`), paced per number
(`pacing`) and sent by a Celery task (`worker`); Meta's statuses come back to it through
`biz_opaque_callback_data` (`statuses`). Templates are synced from the WABA and follow Meta's
status events (`templates`). This room may read conversations (a send is recorded as a
conversation message) but never imports onboarding.
"""
