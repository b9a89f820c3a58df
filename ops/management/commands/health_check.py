import json

from django.core.management.base import BaseCommand

from ops.health import is_ready, readiness

COMPONENTS = ["database", "cache", "broker", "beat"]


class Command(BaseCommand):
    help = (
        "Runs the /readyz checks (database, cache, broker, beat heartbeat) from the command "
        "line. Exits 1 when a critical component (HEALTH_CRITICAL: database and beat by default) "
        "fails, 0 otherwise, so it can serve as a container health check. With --only, runs "
        "only the named checks and exits 1 when any of them fails (e.g. `--only beat`, the "
        "health check of the beat container)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: ready and each check.")
        parser.add_argument("--only", action="append", choices=COMPONENTS, metavar="CHECK",
                            help=f"Run only this check ({', '.join(COMPONENTS)}); repeatable.")

    def handle(self, *args, **options) -> None:
        only = options["only"]
        checks = readiness(only=only)
        if only:
            ready = bool(checks) and all(not value.startswith("error")
                                         for value in checks.values())
        else:
            ready = is_ready(checks)
        if options["json"]:
            self.stdout.write(json.dumps({"ready": ready, "checks": checks}))
        else:
            for name, value in checks.items():
                self.stdout.write(f"{name}: {value}")
            self.stdout.write("ready" if ready else "NOT READY")
        if not ready:
            raise SystemExit(1)
