from collections import Counter

from django.core.management.base import BaseCommand

from whatsapp.onboarding.token_health import tokens_check

from ._common import dump, find_organization


class Command(BaseCommand):
    help = (
        "Checks the stored business tokens with Meta's debug_token (asked with the app token), "
        "for one organization (--org) or all. An invalid token marks the connection "
        "'token invalid' (the tenant is asked to reconnect) and is audited once; transient "
        "Graph errors change nothing. Stores the expiry (none = never expires). Tokens are "
        "never printed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", default="", help="Organization id or slug.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: results per connection and totals.")

    def handle(self, *args, org: str, **options) -> None:
        checks = tokens_check(organization=find_organization(org) if org else None)
        results = [c.as_dict() for c in checks]
        totals = dict(Counter(c.result for c in checks))
        if options["json"]:
            self.stdout.write(dump({"checked": len(checks), "totals": totals,
                                    "results": results}))
            return
        for c in results:
            self.stdout.write(f"WABA {c['waba_id']}: {c['result']} {c['detail']}".rstrip()
                              + (f" (expires {c['expires_at']})" if c["expires_at"] else ""))
        self.stdout.write(f"{len(checks)} checked: {totals}")
