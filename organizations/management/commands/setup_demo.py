import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from organizations.models import Organization
from organizations.services import organization_create

DEMO_ORG = "Imobiliária Demonstração"
DEMO_ADMIN = ("admin@demo.qualifica.local", "demo-admin-123")
DEMO_SUPPORT = ("suporte@demo.qualifica.local", "demo-suporte-123")


class Command(BaseCommand):
    help = (
        "Creates (once) the demo imobiliária with its admin, and a support superuser for the "
        "Django admin. Safe to run again: existing users keep working with the printed logins."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the logins as JSON.")

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        organization = Organization.objects.filter(name=DEMO_ORG).first()
        if organization is None:
            organization, _ = organization_create(
                name=DEMO_ORG, admin_email=DEMO_ADMIN[0], password=DEMO_ADMIN[1]
            )
        support = User.objects.filter(username=DEMO_SUPPORT[0]).first()
        if support is None:
            User.objects.create_superuser(DEMO_SUPPORT[0], DEMO_SUPPORT[0], DEMO_SUPPORT[1])
        result = {
            "organization": organization.name,
            "admin": {"email": DEMO_ADMIN[0], "password": DEMO_ADMIN[1]},
            "support": {"email": DEMO_SUPPORT[0], "password": DEMO_SUPPORT[1]},
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        self.stdout.write(f"Imobiliária: {organization.name}")
        self.stdout.write(f"  admin:   {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")
        self.stdout.write(f"  suporte: {DEMO_SUPPORT[0]} / {DEMO_SUPPORT[1]} (Django admin)")
