from django.core.management.base import BaseCommand

from whatsapp.models import Onboarding

from ._common import dump


class Command(BaseCommand):
    help = (
        "Marks pending onboardings past their expiry as expired (what the beat task does every "
        "15 minutes). Redis keys are left to expire by their TTL; expiry is also always checked "
        "on read, so this only keeps the database tidy."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help='Print {"expired": N}.')

    def handle(self, *args, **options) -> None:
        expired = Onboarding.objects.expire_due()
        self.stdout.write(dump({"expired": expired}) if options["json"]
                          else f"{expired} onboardings expired")
