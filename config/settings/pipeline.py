"""The onboarding pipeline's settings (whatsapp/onboarding/pipeline.py, README "Connecting a
number"), read from the environment like the rest of `config.settings.base`, which imports this
module after WHATSAPP_PIPELINE_STALL_SECONDS."""

import environ

env = environ.Env()  # the .env file was read by base, into the process environment

# A run holds the connection for this long and renews it at every step, so a run whose worker
# died frees the connection within this time (never longer than WHATSAPP_PIPELINE_STALL_SECONDS:
# the sweep is never held back by a dead worker's lock).
WHATSAPP_PIPELINE_LOCK_SECONDS = env.int("WHATSAPP_PIPELINE_LOCK_SECONDS", default=60)
# Seconds before each automatic retry of a step that failed transiently (Meta unavailable,
# network). After the last one the connection is `error` with a code the tenant sees, an alert
# fires, and the tenant (or support) runs it again. Default: 30 s, 1, 2, 5, 10 min (~18 min).
WHATSAPP_PIPELINE_RETRY_DELAYS = [
    int(seconds) for seconds in env.list("WHATSAPP_PIPELINE_RETRY_DELAYS",
                                         default=["30", "60", "120", "300", "600"])
]
# How far around an orphan WABA's arrival the claim screen looks for organizations whose
# onboarding was pending (or stalled), to suggest who it belongs to.
WHATSAPP_ORPHAN_MATCH_WINDOW_SECONDS = env.int("WHATSAPP_ORPHAN_MATCH_WINDOW_SECONDS",
                                               default=6 * 3600)
