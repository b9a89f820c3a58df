import sys

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.onboarding.keyrotation import secrets_rotate

from ._common import dump


class Command(BaseCommand):
    help = (
        "Re-encrypts every stored token and PIN with the current TOKEN_ENCRYPTION_KEY. Put the "
        "new key in TOKEN_ENCRYPTION_KEY and the previous one(s) in TOKEN_ENCRYPTION_OLD_KEYS, "
        "deploy, run this, and remove the old keys once it reports no failures. Idempotent; "
        "--dry-run only counts. Audited as KEY_ROTATED. Never prints a secret."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="Count what would be re-encrypted; change nothing.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: key_id, rotated, already_current, "
                                 "failed (row references only).")

    def handle(self, *args, dry_run: bool, **options) -> None:
        def progress(seen: int) -> None:
            if not options["json"]:
                sys.stderr.write(f"\r{seen} values checked")

        result = secrets_rotate(dry_run=dry_run, progress=progress)
        data = {"dry_run": dry_run, "key_id": result.key_id, "rotated": result.rotated,
                "already_current": result.already_current, "by_field": result.by_field,
                "failed": result.failed}
        if not dry_run and result.rotated:
            audit_record(action=AuditLog.Action.KEY_ROTATED, actor_label="manage.py",
                         target=f"key:{result.key_id}",
                         metadata={k: v for k, v in data.items() if k != "dry_run"})
        if options["json"]:
            self.stdout.write(dump(data))
        else:
            verb = "Would re-encrypt" if dry_run else "Re-encrypted"
            self.stdout.write(f"{verb} {result.rotated} values with key {result.key_id}; "
                              f"{result.already_current} already current")
        if result.failed:
            raise CommandError(f"{len(result.failed)} values could not be decrypted with any "
                               f"configured key: {result.failed[:20]}")
