import json

from django.core.management.base import BaseCommand

from ops.health import is_ready, readiness


class Command(BaseCommand):
    help = (
        "Runs the /readyz checks (database, cache, broker, beat heartbeat) from the command "
        "line. Exits 1 when a critical component (HEALTH_CRITICAL: database and beat by default) "
        "fails, 0 otherwise, so it can serve as a container health check."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: ready and each check.")

    def handle(self, *args, **options) -> None:
        checks = readiness()
        ready = is_ready(checks)
        if options["json"]:
            self.stdout.write(json.dumps({"ready": ready, "checks": checks}))
        else:
            for name, value in checks.items():
                self.stdout.write(f"{name}: {value}")
            self.stdout.write("ready" if ready else "NOT READY")
        if not ready:
            raise SystemExit(1)
