import uuid
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from organizations.models import Membership, Organization
from whatsapp.core import crypto
from whatsapp.models import Connection, Onboarding, OutboundMessage, PhoneNumber, WebhookLog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@imobiliaria.test")
    username = factory.SelfAttribute("email")
    password = factory.django.Password("senha-forte-123")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Imobiliária {n}")
    slug = factory.Sequence(lambda n: f"imobiliaria-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.ADMIN


class OnboardingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Onboarding

    organization = factory.SubFactory(OrganizationFactory)
    tracking_code = factory.LazyFunction(uuid.uuid4)
    redirect_path = "/dashboard/settings/whatsapp"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    organization = factory.SubFactory(OrganizationFactory)
    waba_id = factory.Sequence(lambda n: f"1020000{n:08d}")
    owner_business_id = factory.Sequence(lambda n: f"2030000{n:08d}")
    # As PARTNER_ADDED would have recorded it (Meta's word).
    owner_business_source = Connection.OwnerSource.WEBHOOK
    status = Connection.Status.CONNECTED
    connected_at = factory.LazyFunction(timezone.now)

    class Params:
        # ConnectionFactory(with_token=True, token="EAA…"): a stored (encrypted) business token.
        token = "EAAGtenanttoken123456"
        with_token = factory.Trait(
            access_token_encrypted=factory.LazyAttribute(lambda o: crypto.encrypt(o.token)),
            token_status=Connection.TokenStatus.VALID,
        )


class PhoneNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PhoneNumber

    connection = factory.SubFactory(ConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    phone_number_id = factory.Sequence(lambda n: f"3040000{n:08d}")
    display_phone_number = "5511940001234"
    status = PhoneNumber.Status.CONFIGURED


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundMessage

    config = factory.SubFactory(PhoneNumberFactory)
    organization = factory.SelfAttribute("config.organization")
    to = "5511999990000"
    kind = OutboundMessage.Kind.TEXT
    text = "Olá"


class WebhookLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookLog

    raw_body = b"{}"
    body_sha256 = factory.Sequence(lambda n: f"{n:064x}")
    headers = factory.LazyFunction(dict)


class ContactFactory(factory.django.DjangoModelFactory):
    """A lead; its identities are added by ContactIdentityFactory when a test needs them."""

    class Meta:
        model = "whatsapp.Contact"

    organization = factory.SubFactory(OrganizationFactory)
    user_id = factory.Sequence(lambda n: f"BR.{9000000000000000000 + n}")
    wa_id = factory.Sequence(lambda n: f"55119{n:08d}")
    profile_name = factory.Sequence(lambda n: f"Lead {n}")


class ContactIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "whatsapp.ContactIdentity"

    contact = factory.SubFactory(ContactFactory)
    organization = factory.SelfAttribute("contact.organization")
    kind = "user_id"
    value = factory.SelfAttribute("contact.user_id")


def fixture_numbers() -> dict[str, PhoneNumber]:
    """The two numbers of ../shared/meta-payloads, configured, each in its own organization.

    A: WABA 102000000000101, phone id 304000000000101 (Cloud API number).
    B: WABA 102000000000202, phone id 304000000000202 (coexistence number).
    """
    a = PhoneNumberFactory(connection__waba_id="102000000000101",
                      phone_number_id="304000000000101", display_phone_number="5511940001234")
    b = PhoneNumberFactory(connection__waba_id="102000000000202",
                      phone_number_id="304000000000202", display_phone_number="5521970005678",
                      is_on_biz_app=True)
    return {"A": a, "B": b}
