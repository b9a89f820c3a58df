import json

from django.core.management.base import BaseCommand

from ops import selfcheck
from ops.selfcheck import REQUIRED_FIELDS


class Command(BaseCommand):
    help = (
        "Smoke test of a real deployment: settings (production ones present, DEBUG off), "
        "database, Redis, broker, beat heartbeat, Graph reachability and the app token "
        "(debug_token with META_APP_ID|META_APP_SECRET), the app's webhook fields at Meta "
        f"(GET /{{app_id}}/subscriptions: {', '.join(REQUIRED_FIELDS)}), and a signed round "
        "trip through the public webhook URL (stored and processed, then removed). Exits 1 "
        "when any check fails. Never prints a token or secret."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: ok and every check {name, ok, detail}.")
        parser.add_argument("--webhook-url", default="",
                            help="The deployment's public webhook URL (default: SITE_URL + "
                                 "/api/v1/whatsapp/webhook).")
        parser.add_argument("--timeout", type=float, default=30.0,
                            help="Seconds to wait for the test delivery to be processed (30).")

    def handle(self, *args, **options) -> None:
        checks = selfcheck.run(webhook_url=options["webhook_url"], timeout=options["timeout"])
        result = selfcheck.as_json(checks)
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            width = max(len(c.name) for c in checks)
            for check in checks:
                self.stdout.write(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<{width}}  "
                                  f"{check.detail}")
            failed = [c.name for c in checks if not c.ok]
            self.stdout.write("all checks passed" if not failed
                              else f"FAILED: {', '.join(failed)}")
        if not result["ok"]:
            raise SystemExit(1)
