import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from whatsapp.webhooks.retention import webhook_bodies_purge

from ._common import dump


class Command(BaseCommand):
    help = (
        "Removes the raw bodies of processed webhook deliveries received more than "
        "WHATSAPP_WEBHOOK_RETENTION_DAYS ago (LGPD), in batches; each row keeps its metadata "
        "and body_sha256. Dead, failed, parked and unprocessed deliveries keep their body. "
        "Beat runs the same every hour. Use --dry-run to count first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None,
                            help="Override WHATSAPP_WEBHOOK_RETENTION_DAYS for this run.")
        parser.add_argument("--batch-size", type=int, default=1000,
                            help="Rows per UPDATE (default 1000).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Only count the bodies that would be removed.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: dry_run, days, cutoff, purged, batches.")

    def handle(self, *args, **o) -> None:
        if o["days"] is not None and o["days"] < 1:
            raise CommandError(_("--days must be at least 1."))
        if o["batch_size"] < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        show_progress = not o["json"] and not o["dry_run"]

        def progress(done: int) -> None:
            if show_progress:
                sys.stderr.write(f"\r{done}")
                sys.stderr.flush()

        result = webhook_bodies_purge(days=o["days"], batch_size=o["batch_size"],
                                      dry_run=o["dry_run"], progress=progress)
        if show_progress and result.batches:
            sys.stderr.write("\n")
        data = {"dry_run": o["dry_run"], "days": result.days, "cutoff": result.cutoff.isoformat(),
                "purged": result.purged, "batches": result.batches}
        if o["json"]:
            self.stdout.write(dump(data))
            return
        values = {"n": result.purged, "cutoff": f"{result.cutoff:%Y-%m-%d %H:%M}"}
        if o["dry_run"]:
            self.stdout.write(_("%(n)d bodies of processed deliveries received before "
                                "%(cutoff)s would be removed.") % values)
        else:
            self.stdout.write(_("%(n)d bodies of processed deliveries received before "
                                "%(cutoff)s removed.") % values)
