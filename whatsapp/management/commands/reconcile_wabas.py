from django.core.management.base import BaseCommand, CommandError

from whatsapp.core.graph import GraphError
from whatsapp.onboarding.reconcile import wabas_reconcile
from whatsapp.onboarding.signup import OnboardingError

from ._common import dump


class Command(BaseCommand):
    help = (
        "Compares the WABAs Meta says are shared with our partner business "
        "(GET /{META_PARTNER_BUSINESS_ID}/client_whatsapp_business_accounts, every page) with "
        "our connections: a shared WABA we do not know becomes an orphan for support to claim "
        "(a PARTNER_ADDED that never arrived); a connected WABA no longer shared is "
        "disconnected with reason no_longer_shared. Each finding is audited once and alerted. "
        "Beat runs it hourly. Needs META_PARTNER_BUSINESS_ID and META_SYSTEM_USER_TOKEN."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="Only list the findings; change nothing.")
        parser.add_argument("--json", action="store_true",
                            help="Print the report as JSON (shared, known, findings).")

    def handle(self, *args, **options) -> None:
        try:
            report = wabas_reconcile(dry_run=options["dry_run"])
        except OnboardingError as exc:
            raise CommandError(exc.message) from exc
        except GraphError as exc:
            raise CommandError(f"Meta did not answer the listing: {exc}") from exc
        if options["json"]:
            self.stdout.write(dump(report.as_json()))
            return
        mode = " (dry run: nothing changed)" if report.dry_run else ""
        self.stdout.write(f"{report.shared} WABAs shared with us, {report.known} known{mode}")
        for finding in report.findings:
            what = ("unknown: now an orphan to claim" if finding.kind == "unknown_waba"
                    else f"no longer shared: disconnected ({finding.organization})")
            if report.dry_run:
                what = ("unknown: would become an orphan" if finding.kind == "unknown_waba"
                        else f"no longer shared: would be disconnected ({finding.organization})")
            self.stdout.write(f"  WABA {finding.waba_id} {finding.name}: {what}")
        if report.held_back:
            self.stdout.write("Meta listed no WABA at all: no connection was disconnected "
                              "(check META_PARTNER_BUSINESS_ID).")
        if not report.findings:
            self.stdout.write("Nothing to reconcile.")
