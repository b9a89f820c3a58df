"""The lease of an attempt, kept alive while its work runs (a heartbeat).

A claimed delivery is held until `locked_until` (`WHATSAPP_WEBHOOK_LEASE_SECONDS`, short, so a
delivery whose worker died is taken again by the sweeper within seconds). While the attempt is
alive, `LeaseHeartbeat` moves `locked_until` forward every quarter lease with a conditional
UPDATE fenced on the value this attempt last wrote: if another attempt took the row, the
renewal matches nothing and stops, and the stale attempt's `mark_*` (fenced the same way)
cannot write either.

Why a thread with its own database connection: the delivery's work runs in one transaction
(`process.webhook_process`), and nothing it writes is visible before it commits. A renewal
made on the same connection would sit inside that transaction, invisible to the sweeper until
the end: useless exactly when it matters (a long history import). Renewing between steps
outside the atomic block would split the delivery's one transaction. Django connections are
per thread, so the heartbeat's UPDATEs run on a connection of their own in autocommit, each
committed at once, while the work goes on; the thread closes its connection when it stops.
If the process dies (SIGKILL, OOM, the hard time limit), the thread dies with it and the
lease runs out within one lease.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from whatsapp.models import WebhookLog

logger = logging.getLogger(__name__)


def lease_renew(log_id: int, *, held_until: datetime, lease: timedelta) -> datetime | None:
    """Extends an attempt's lease; the new `locked_until`, or None when the attempt no longer
    holds the row (another attempt took it, or it is finished)."""
    until = timezone.now() + lease
    renewed = WebhookLog.objects.filter(
        pk=log_id, status=WebhookLog.Status.PROCESSING, locked_until=held_until,
    ).update(locked_until=until)
    return until if renewed else None


class LeaseHeartbeat:
    """Context manager: renews `log`'s lease in a thread until the block ends.

    On exit the thread is stopped and joined before the caller writes the outcome, so
    `log.locked_until` (the fencing value `mark_*` use) is the one last committed.
    Renewal stops after `CELERY_TASK_TIME_LIMIT`: no Celery attempt lives longer (the hard
    limit kills it), so an attempt stuck past it loses its lease like a dead one.
    """

    def __init__(self, log: WebhookLog, *, lease: timedelta) -> None:
        self.log, self.lease = log, lease
        self.interval = max(lease.total_seconds() / 4, 0.05)
        self.renewals = 0
        self.lost = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LeaseHeartbeat":
        # SQLite (the embedded demo) has one writer at a time: the renewal would wait on the
        # delivery's own transaction. Nothing races it there (no sweeper without a worker).
        if connections[WebhookLog.objects.db].vendor != "sqlite":
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"lease-{self.log.pk}")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + settings.CELERY_TASK_TIME_LIMIT
        try:
            while not self._halt.wait(self.interval) and time.monotonic() < deadline:
                try:
                    until = lease_renew(self.log.pk, held_until=self.log.locked_until,
                                        lease=self.lease)
                except Exception:
                    # A database blip: try again next beat (the lease has 3 more).
                    logger.warning("Webhook %s: could not renew the lease", self.log.pk,
                                   exc_info=True)
                    continue
                if until is None:
                    self.lost = True
                    logger.warning("Webhook %s: lease lost to another attempt", self.log.pk)
                    return
                self.log.locked_until = until
                self.renewals += 1
        finally:
            connections.close_all()  # this thread's connections only
