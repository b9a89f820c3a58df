"""Enqueueing Celery tasks by name, so that domain code never imports `whatsapp.tasks`.

`whatsapp/tasks.py` is the outer ring: its task bodies import the rooms. A room that must
start work later (a pipeline, a send, a retry) asks for the registered task by its name here;
`WhatsappConfig.ready()` imports the tasks module, so every name is registered in every
process (web, worker, beat, shell). The names are the public contract (`whatsapp.tasks.*`):
beat schedules and messages already queued refer to them.
"""

import logging

from celery import current_app
from celery.app.task import Task

logger = logging.getLogger(__name__)


def task(name: str) -> Task:
    """The registered task `whatsapp.tasks.<name>`; KeyError for a name that does not exist."""
    return current_app.tasks[f"whatsapp.tasks.{name}"]


def enqueue_quietly(name: str, *args, countdown: float | None = None) -> bool:
    """Publishes a task; a broker outage is logged and reported as False, never raised.

    Every caller has a sweeper that finds the work again from the database, so a lost publish
    only delays it.
    """
    try:
        if countdown is None:
            task(name).delay(*args)
        else:
            task(name).apply_async(args=args, countdown=countdown)
    except Exception:
        logger.warning("Could not enqueue %s%s; its sweeper will pick it up", name, args)
        return False
    return True
