from django.core.management.base import BaseCommand

from whatsapp.sending.templates import templates_sync_all

from ._common import dump, find_organization


class Command(BaseCommand):
    help = (
        "Reads the message templates of every connected WABA (or one organization's) from "
        "Meta (GET /{waba}/message_templates) and stores their name, language, status and "
        "parameter counts. Uses mapped to templates are kept. A WABA whose listing fails is "
        "logged and skipped. Tokens are never printed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", default="", help="Organization id or slug.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, org: str, **options) -> None:
        results = templates_sync_all(organization=find_organization(org) if org else None)
        if options["json"]:
            self.stdout.write(dump({"results": [r.as_dict() for r in results]}))
            return
        for r in results:
            self.stdout.write(f"WABA {r.waba_id}: {r.created} new, {r.updated} updated")
        self.stdout.write(f"{len(results)} WABA(s) synced")
