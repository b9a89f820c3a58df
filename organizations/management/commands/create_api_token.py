import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from organizations.models import ApiToken, Membership
from organizations.services import organization_by_id_or_slug


class Command(BaseCommand):
    help = (
        "Issues an API token (Authorization: Bearer …) for a user inside one organization the "
        "user belongs to. The token is printed once; only its hash is stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True, help="E-mail of an existing user.")
        parser.add_argument("--organization", required=True, help="Organization id or slug.")
        parser.add_argument("--name", default="", help="A label for the token (e.g. 'crm').")
        parser.add_argument(
            "--json", action="store_true",
            help="Print one JSON object: organization_id, user_id, token.",
        )

    def handle(self, *args, email: str, organization: str, name: str, **options) -> None:
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with e-mail {email}.")
        org = organization_by_id_or_slug(organization)
        if org is None:
            raise CommandError(f"No organization with id or slug {organization!r}.")
        if not Membership.objects.filter(user=user, organization=org).exists():
            raise CommandError(f"{email} is not a member of {org.slug}.")
        _, raw = ApiToken.issue(user=user, organization=org, name=name)
        result = {"organization_id": str(org.pk), "user_id": user.pk, "token": raw}
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(self.style.SUCCESS(f"Token for {email} in {org.slug}: {raw}"))
            self.stdout.write("Keep it now: it is not stored and cannot be shown again.")
