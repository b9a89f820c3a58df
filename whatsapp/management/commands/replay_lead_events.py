import uuid

from django.core.management.base import BaseCommand, CommandError

from whatsapp.events.delivery import replay
from whatsapp.models import LeadEvent

from ._common import dump, find_organization, parse_since


class Command(BaseCommand):
    help = (
        "Sends dead lead events (retries used up) to LEAD_EVENTS_URL again, from their first "
        "attempt. A dead event holds the later events of its conversation; once replayed, they "
        "follow it in order. Select with --ids, --organization, --type, --since (combined with "
        "AND) or --all. Use --dry-run to see what would be replayed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ids", default="", help="Comma-separated event ids (UUIDs).")
        parser.add_argument("--organization", default="", help="Organization id or slug.")
        parser.add_argument("--type", default="", help="Event type, e.g. message.received.")
        parser.add_argument("--since", default="",
                            help="Created at or after: 2026-11-20, 2026-11-20T10:00, 6h, 2d.")
        parser.add_argument("--all", action="store_true", help="Every dead event.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Only list what would be replayed.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: matched, replayed, ids.")

    def handle(self, *args, **o) -> None:
        try:
            ids = [uuid.UUID(part.strip()) for part in o["ids"].split(",") if part.strip()]
        except ValueError as exc:
            raise CommandError(f"--ids must be comma-separated event ids (UUIDs), got "
                               f"{o['ids']!r}.") from exc
        if not (ids or o["organization"] or o["type"] or o["since"] or o["all"]):
            raise CommandError("Select something: --ids, --organization, --type, --since or "
                               "--all.")
        events = LeadEvent.objects.replayable()
        if ids:
            events = events.filter(pk__in=ids)
        if o["organization"]:
            events = events.filter(organization=find_organization(o["organization"]))
        if o["type"]:
            events = events.filter(type=o["type"])
        if o["since"]:
            events = events.filter(created_at__gte=parse_since(o["since"]))
        matched = [str(pk) for pk in events.order_by("created_at").values_list("pk", flat=True)]
        if o["dry_run"]:
            return self._out(o, {"dry_run": True, "matched": len(matched), "ids": matched},
                             f"Would replay {len(matched)} dead lead events: {matched[:50]}")
        count = replay(LeadEvent.objects.filter(pk__in=matched))
        self._out(o, {"dry_run": False, "matched": len(matched), "replayed": count,
                      "ids": matched}, f"Replayed {count} dead lead events")

    def _out(self, options: dict, data: dict, text: str) -> None:
        self.stdout.write(dump(data) if options["json"] else text)
