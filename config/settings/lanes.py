"""Lanes and Celery queues (issue 17; README "Lanes, queues and workers").

Four Celery queues, so that no kind of work waits behind another:

- `live`: webhook deliveries a lead or a user is waiting on (messages, statuses, echoes, account,
  template and quality events): the live inbox's drainers and per-delivery tasks.
- `bulk`: a coexistence number's history and contacts sync (the bulk inbox), the template sync
  and the subscription reconciliation.
- `sending`: calls to Meta someone is waiting on: sends and the onboarding pipeline.
- `maintenance`: sweepers, retention, expiry, alerts, the beat heartbeat, analytics; and any
  task without a route (CELERY_TASK_DEFAULT_QUEUE), so a task nobody routed never delays live
  work.

A worker started without `-Q` serves all four (the embedded default and the tests); production
starts one worker per group of queues (`celery -A config worker -Q live,sending` and
`-Q bulk,maintenance` on one machine). `WHATSAPP_LANES=false` goes back to one inbox and one
queue (`celery`), kept to measure what the lanes change (bench/run.py).
"""

import environ
from kombu import Queue

env = environ.Env()  # the .env file was read by base, into the process environment

WHATSAPP_LANES = env.bool("WHATSAPP_LANES", default=True)
# The bulk inbox's drainers at once: each holds one process of a worker serving `bulk` while a
# backlog lasts (WHATSAPP_WEBHOOK_DRAINERS counts the live inbox's).
WHATSAPP_WEBHOOK_BULK_DRAINERS = env.int("WHATSAPP_WEBHOOK_BULK_DRAINERS", default=1)
# Bulk deliveries popped per Redis call: a history chunk takes a worker about a second, so a
# drainer takes one at a time and every tenant's next chunk gets its turn between them.
WHATSAPP_WEBHOOK_BULK_DRAIN_BATCH = env.int("WHATSAPP_WEBHOOK_BULK_DRAIN_BATCH", default=1)

_QUEUES = ("live", "bulk", "sending", "maintenance")
_ROUTES = {
    "live": ["whatsapp.tasks.process_webhook", "whatsapp.tasks.drain_webhook_inbox"],
    "bulk": ["whatsapp.tasks.process_webhook_bulk", "whatsapp.tasks.drain_webhook_bulk",
             "whatsapp.tasks.sync_templates", "ops.tasks.reconcile_subscriptions",
             "whatsapp.tasks.reconcile_wabas", "whatsapp.tasks.fetch_media"],
    "sending": ["whatsapp.tasks.send_outbound", "whatsapp.tasks.send_outbound_number",
                "whatsapp.tasks.run_connection_pipeline",
                "whatsapp.tasks.deliver_lead_events", "whatsapp.tasks.run_lead_event_subscriber"],
    "maintenance": ["whatsapp.tasks.sweep_webhooks", "whatsapp.tasks.sweep_outbound",
                    "whatsapp.tasks.purge_webhook_bodies", "whatsapp.tasks.expire_onboardings",
                    "whatsapp.tasks.forward_analytics_event", "ops.tasks.heartbeat",
                    "ops.tasks.token_health", "ops.tasks.evaluate_alerts",
                    "ops.tasks.redis_health", "whatsapp.tasks.notify_token_expiry",
                    "whatsapp.tasks.sweep_pipelines", "whatsapp.tasks.erase_data",
                    "whatsapp.tasks.sweep_erasures", "whatsapp.tasks.sweep_lead_events",
                    "whatsapp.tasks.expire_human_takeovers", "whatsapp.tasks.sweep_media",
                    "whatsapp.tasks.purge_media"],
}

if WHATSAPP_LANES:
    CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in _QUEUES]
    CELERY_TASK_DEFAULT_QUEUE = "maintenance"
    CELERY_TASK_ROUTES = {task: {"queue": queue} for queue, tasks in _ROUTES.items()
                          for task in tasks}
else:
    CELERY_TASK_QUEUES = [Queue("celery", routing_key="celery")]
    CELERY_TASK_DEFAULT_QUEUE = "celery"
    CELERY_TASK_ROUTES = {}
