"""The core: what every room uses and that knows nothing of the rooms or of the database.

Graph API client (`graph`), the typed webhook payloads (`payloads`), phone normalisation and
timestamps (`phones`), token encryption (`crypto`), retry backoff (`backoff`) and enqueueing a
Celery task by name (`jobs`, so domain code never imports `whatsapp.tasks`), a delivery's lane
and tenant read from its bytes (`lanes`). Imports point
down only: the models import `core.crypto`, never the other way round.
"""
