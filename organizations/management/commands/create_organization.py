import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from organizations.models import ApiToken
from organizations.services import organization_create


class Command(BaseCommand):
    help = (
        "Creates an organization (imobiliária) and its admin user, and issues an API token for "
        "that admin. The admin is reused if a user with that e-mail exists. "
        "Example: manage.py create_organization 'Imobiliária Sol' --admin-email a@sol.com.br "
        "--password s3cret --json"
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Display name of the organization.")
        parser.add_argument("--admin-email", required=True, help="E-mail (and login) of the admin.")
        parser.add_argument("--password", help="Password for the admin (omit to keep/disable it).")
        parser.add_argument(
            "--json", action="store_true",
            help="Print one JSON object: organization_id, organization_slug, user_id, token.",
        )

    def handle(self, *args, name: str, admin_email: str, password: str | None, **options) -> None:
        if not name.strip():
            raise CommandError("NAME must not be empty.")
        try:
            validate_email(admin_email)
        except ValidationError as exc:
            raise CommandError(f"--admin-email is not a valid e-mail: {admin_email}") from exc
        organization, user = organization_create(
            name=name.strip(), admin_email=admin_email, password=password
        )
        _, raw = ApiToken.issue(user=user, organization=organization, name="create_organization")
        result = {
            "organization_id": str(organization.pk),
            "organization_slug": organization.slug,
            "user_id": user.pk,
            "token": raw,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(self.style.SUCCESS(f"Organization created: {organization.name}"))
        for key, value in result.items():
            self.stdout.write(f"  {key}: {value}")
        self.stdout.write("Keep the token now: it is not stored and cannot be shown again.")


