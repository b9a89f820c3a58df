from django.core.management.base import BaseCommand

from organizations.models import Organization
from whatsapp.backoffice.status import platform_status, whatsapp_status

from ._common import dump, find_organization


class Command(BaseCommand):
    help = (
        "Shows the WhatsApp state of one organization (--org ID or slug: connections, token "
        "health, phone numbers, last onboarding, webhook counts) or, without --org, of all: "
        "totals, orphans, webhook backlog and dead letters, then one line per organization."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", default="", help="Organization id or slug.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, org: str, **options) -> None:
        if org:
            data = whatsapp_status(find_organization(org))
        else:
            data = {"platform": platform_status(),
                    "organizations": [whatsapp_status(o) for o in Organization.objects.all()]}
        if options["json"]:
            self.stdout.write(dump(data))
            return
        for status in [data] if org else data["organizations"]:
            conns = ", ".join(f"{c['waba_id']} {c['status']} token={c['token_status']}"
                              for c in status["connections"]) or "no connection"
            self.stdout.write(f"{status['organization']}: {conns}; webhooks {status['webhooks']}")
        if not org:
            self.stdout.write(f"platform: {data['platform']}")
