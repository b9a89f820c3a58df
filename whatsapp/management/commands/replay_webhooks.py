import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from whatsapp.models import WebhookLog
from whatsapp.webhooks.replay import webhooks_for_replay, webhooks_replay

from ._common import dump, parse_since


class Command(BaseCommand):
    help = (
        "Replays stored webhook deliveries: resets their processing state (status, attempts, "
        "errors; never the raw body) and enqueues them again through the normal, idempotent "
        "path. Select with --ids, --failed, --dead, --field, --since (combined with AND; "
        "--failed and --dead with OR). Replaying a processed delivery is harmless. Every replay "
        "is audited (WEBHOOK_REPLAYED). Use --dry-run to see what would be replayed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ids", default="",
                            help="Comma-separated delivery ids, e.g. 12,15,20.")
        parser.add_argument("--failed", action="store_true",
                            help="Deliveries waiting for a retry.")
        parser.add_argument("--dead", action="store_true",
                            help="Deliveries that used up their attempts.")
        parser.add_argument("--field", default="",
                            help="Only deliveries containing this change field (e.g. messages).")
        parser.add_argument("--since", default="",
                            help="Received at or after: 2026-11-20, 2026-11-20T10:00, 6h, 2d.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Only list what would be replayed.")
        parser.add_argument("--actor", default="manage.py",
                            help="Who is replaying, for the audit log (default manage.py).")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: matched, replayed, skipped, ids.")

    def handle(self, *args, **o) -> None:
        ids = self._ids(o["ids"])
        if not (ids or o["failed"] or o["dead"] or o["field"] or o["since"]):
            raise CommandError("Select something: --ids, --failed, --dead, --field or --since.")
        since = parse_since(o["since"]) if o["since"] else None
        logs = webhooks_for_replay(ids=ids, failed=o["failed"], dead=o["dead"],
                                   field=o["field"], since=since)
        matched = list(logs.values_list("pk", flat=True))
        if ids and (missing := sorted(set(ids) - set(
                WebhookLog.objects.filter(pk__in=ids).values_list("pk", flat=True)))):
            raise CommandError(f"No webhook deliveries with ids {missing}.")
        if o["dry_run"]:
            return self._out(o, {"dry_run": True, "matched": len(matched), "ids": matched},
                             f"Would replay {len(matched)} deliveries: {matched[:50]}")
        show_progress = not o["json"] and len(matched) > 500

        def progress(done: int, total: int) -> None:
            if show_progress:
                sys.stderr.write(f"\r{done}/{total} replayed")
                sys.stderr.flush()

        result = webhooks_replay(logs=logs, actor_label=o["actor"], progress=progress)
        if show_progress:
            sys.stderr.write("\n")
        if result.skipped_purged:
            refusal = purged_refusal(result.skipped_purged)
            if not result.replayed and not result.skipped_in_progress:
                raise CommandError(refusal)
            self.stderr.write(refusal)
        self._out(o, {"dry_run": False, "matched": len(matched),
                      "replayed": len(result.replayed),
                      "skipped_in_progress": result.skipped_in_progress,
                      "skipped_purged": result.skipped_purged,
                      "ids": result.replayed},
                  f"Replayed {len(result.replayed)} deliveries"
                  + (f"; skipped {len(result.skipped_in_progress)} being processed right now"
                     if result.skipped_in_progress else ""))

    def _ids(self, raw: str) -> list[int]:
        try:
            return [int(part) for part in raw.split(",") if part.strip()]
        except ValueError as exc:
            raise CommandError(f"--ids must be comma-separated numbers, got {raw!r}.") from exc

    def _out(self, options: dict, data: dict, text: str) -> None:
        self.stdout.write(dump(data) if options["json"] else text)


def purged_refusal(ids: list[int]) -> str:
    return _("%(n)d deliveries cannot be replayed: their raw body was removed by the retention "
             "(WHATSAPP_WEBHOOK_RETENTION_DAYS). Ids: %(ids)s") % {
        "n": len(ids), "ids": ", ".join(map(str, ids[:50]))}
