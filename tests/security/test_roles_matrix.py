"""Issue 14 §3: roles mean something. Every tenant endpoint of `/api/v1/whatsapp/` for an admin
and a member, by session and by Bearer token (one table), and the pages each role sees.

Admins connect, disconnect, choose the number, mint onboarding links and relay the signup
callback; members read the status, the numbers, the templates and the sends, and send within
the sending rules, read the conversations and their media, and ask a lead for its phone
number. A member refused gets 403 with a pt-BR error and nothing changes.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.files.base import ContentFile
from django.urls import URLPattern
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from organizations.models import ApiToken, Membership
from tests.factories import (
    ConnectionFactory,
    ContactFactory,
    ContactIdentityFactory,
    MembershipFactory,
    OnboardingFactory,
    PhoneNumberFactory,
)
from whatsapp import urls as whatsapp_urls
from whatsapp.conversations.media import media_link_token, media_storage
from whatsapp.models import (
    AnalyticsEvent,
    Connection,
    Contact,
    ErasureRequest,
    Message,
    MessageMedia,
    MessageTemplate,
    Onboarding,
    OutboundMessage,
    PhoneNumber,
    SendPolicy,
)

pytestmark = pytest.mark.django_db
API = "/api/v1/whatsapp/"
ADMINS_ONLY = {"error": "Somente os administradores da organização podem fazer isso."}
LEAD = "5511987654321"


@dataclass
class World:
    """One organization with an admin and a member, plus what a row's request needs."""

    admin: Membership
    member: Membership
    things: dict = field(default_factory=dict)

    @property
    def org(self):
        return self.admin.organization


# --- what each row needs --------------------------------------------------------------------
def connected(world: World) -> None:
    number = PhoneNumberFactory(connection__organization=world.org)
    world.things.update(number=number, connection=number.connection)


def awaiting_selection(world: World) -> None:
    connection = ConnectionFactory(organization=world.org,
                                   status=Connection.Status.AWAITING_PHONE_SELECTION)
    first = PhoneNumberFactory(connection=connection, status=PhoneNumber.Status.PENDING)
    second = PhoneNumberFactory(connection=connection, status=PhoneNumber.Status.PENDING)
    world.things.update(connection=connection, first=first, second=second)


def failed_connection(world: World) -> None:
    world.things["connection"] = ConnectionFactory(
        organization=world.org, status=Connection.Status.ERROR, error_code="meta_unavailable")


def pending_onboarding(world: World) -> None:
    world.things["onboarding"] = OnboardingFactory(organization=world.org,
                                                   created_by=world.admin.user)


def ready_to_send(world: World) -> None:
    connected(world)
    number = world.things["number"]
    number.connection.set_access_token("EAAbusiness-token")
    number.connection.save()
    SendPolicy.objects.create(organization=world.org, mode="enabled")
    MessageTemplate.objects.create(
        organization=world.org, connection=number.connection, waba_id=number.connection.waba_id,
        template_id="606000000000001", name="confirmacao_visita", language="pt_BR",
        category="UTILITY", status="APPROVED", body_parameter_count=2, use="confirmacao")
    contact = ContactFactory(organization=world.org, wa_id=LEAD,
                             last_inbound_at=timezone.now() - timedelta(hours=1))
    ContactIdentityFactory(contact=contact, kind="phone", value=LEAD)


def a_taken_over_lead(world: World) -> None:
    world.things["lead"] = ContactFactory(organization=world.org,
                                          human_takeover_at=timezone.now() - timedelta(hours=1))


def a_queued_send(world: World) -> None:
    ready_to_send(world)
    world.things["message"] = OutboundMessage.objects.create(
        organization=world.org, config=world.things["number"], kind=OutboundMessage.Kind.TEXT,
        to=LEAD, text="Olá!")


def a_lead(world: World) -> None:
    connected(world)
    world.things["contact"] = ContactFactory(organization=world.org, wa_id=LEAD)


def a_conversation(world: World) -> None:
    ready_to_send(world)
    contact = Contact.objects.get(organization=world.org)
    message = Message.objects.create(
        organization=world.org, config=world.things["number"], contact=contact,
        wamid="wamid.matrix", direction="inbound", type="image", media_id="505000000000001",
        timestamp=timezone.now())
    name = media_storage().save("matrix/photo.jpg", ContentFile(b"\xff\xd8\xff photo"))
    media = MessageMedia.objects.create(
        organization=world.org, message=message, media_id=message.media_id, status="stored",
        file=name, mime_type="image/jpeg", size=12, stored_at=timezone.now())
    world.things.update(contact=contact, message=message, media=media)


# --- the matrix -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    name: str  # the URL name in whatsapp/urls.py
    method: str
    members_too: bool
    setup: Callable[[World], None] | None
    path: Callable[[World], str]
    body: Callable[[World], dict] | None
    ok: int  # the status an allowed caller gets
    done: Callable[[World, dict], bool]  # what an allowed caller's request achieved


MATRIX = [
    Row("onboarding-url", "GET", False, None,
        lambda w: f"{API}onboarding-url?redirectPath=/dashboard/settings/whatsapp", None, 200,
        lambda w, body: Onboarding.objects.get(organization=w.org).tracking_code.hex
        == body["trackingCode"].replace("-", "")),
    Row("embedded-signup-callback", "POST", False, pending_onboarding,
        lambda w: f"{API}embedded-signup/callback",
        lambda w: {"event": "CANCEL", "state": str(w.things["onboarding"].tracking_code),
                   "currentStep": "PHONE_NUMBER_SETUP"}, 200,
        lambda w, body: Onboarding.objects.get().status == Onboarding.Status.CANCELLED),
    Row("connection-disconnect", "POST", False, connected,
        lambda w: f"{API}connection/disconnect", lambda w: {"reason": "trocar número"}, 200,
        lambda w, body: Connection.objects.get().status == Connection.Status.DISCONNECTED),
    Row("connection-retry", "POST", False, failed_connection,
        lambda w: f"{API}connection/retry", lambda w: {}, 202,
        lambda w, body: Connection.objects.get().status == Connection.Status.CONNECTING),
    Row("select-phone", "POST", False, awaiting_selection,
        lambda w: f"{API}select-phone",
        lambda w: {"wabaId": w.things["connection"].waba_id,
                   "phoneId": w.things["second"].phone_number_id}, 200,
        lambda w, body: (Connection.objects.get().status == Connection.Status.CONNECTING
                         and PhoneNumber.objects.get(pk=w.things["second"].pk).status
                         == PhoneNumber.Status.CONFIGURING)),
    Row("check-connection", "GET", True, connected, lambda w: f"{API}check-connection", None,
        200, lambda w, body: body["status"] == "connected"),
    Row("connection-status", "GET", True, connected, lambda w: f"{API}connection/status", None,
        200, lambda w, body: body["connected"] is True),
    Row("phone-numbers", "GET", True, connected, lambda w: f"{API}phone-numbers", None, 200,
        lambda w, body: [n["phoneNumberId"] for n in body["phoneNumbers"]]
        == [w.things["number"].phone_number_id]),
    Row("templates", "GET", True, ready_to_send, lambda w: f"{API}templates", None, 200,
        lambda w, body: [t["name"] for t in body["templates"]] == ["confirmacao_visita"]),
    Row("messages", "POST", True, ready_to_send, lambda w: f"{API}messages",
        lambda w: {"type": "template", "to": LEAD,
                   "template": {"use": "confirmacao", "parameters": ["Mariana", "amanhã"]}}, 202,
        lambda w, body: OutboundMessage.objects.get(pk=body["message"]["id"]).status
        == OutboundMessage.Status.QUEUED),
    Row("conversation-hand-back", "POST", True, a_taken_over_lead,
        lambda w: f"{API}conversations/{w.things['lead'].pk}/hand-back", lambda w: {}, 200,
        lambda w, body: body["conversation"]["humanTakeover"] is False
        and not Contact.objects.get(pk=w.things["lead"].pk).taken_over),
    Row("message-detail", "GET", True, a_queued_send,
        lambda w: f"{API}messages/{w.things['message'].pk}", None, 200,
        lambda w, body: body["message"]["id"] == str(w.things["message"].pk)),
    Row("usage", "GET", False, connected, lambda w: f"{API}usage?month=2026-12", None, 200,
        lambda w, body: body["month"] == "2026-12"),
    Row("contact-export", "GET", False, a_lead,
        lambda w: f"{API}contacts/{w.things['contact'].pk}/export", None, 200,
        lambda w, body: body["contact"]["phone"] == LEAD),
    Row("contact-erase", "POST", False, a_lead,
        lambda w: f"{API}contacts/{w.things['contact'].pk}/erase", lambda w: {}, 202,
        lambda w, body: ErasureRequest.objects.get(pk=body["erasure"]["id"]).contact_id
        == w.things["contact"].pk),
    Row("contacts", "GET", True, a_conversation, lambda w: f"{API}contacts", None, 200,
        lambda w, body: [c["id"] for c in body["contacts"]] == [w.things["contact"].pk]),
    Row("contact-messages", "GET", True, a_conversation,
        lambda w: f"{API}contacts/{w.things['contact'].pk}/messages", None, 200,
        lambda w, body: body["messages"][0]["mediaUrl"].startswith("http")),
    Row("contact-request-phone", "POST", True, a_conversation,
        lambda w: f"{API}contacts/{w.things['contact'].pk}/request-phone", lambda w: {}, 202,
        lambda w, body: OutboundMessage.objects.get(pk=body["message"]["id"]).kind
        == OutboundMessage.Kind.REQUEST_CONTACT_INFO),
    Row("media", "GET", True, a_conversation,
        lambda w: f"{API}media/{media_link_token(w.things['media'])}", None, 200,
        lambda w, body: body == b"\xff\xd8\xff photo"),
]


def session_client(membership: Membership) -> APIClient:
    client = APIClient()
    client.force_login(membership.user)
    return client


def token_client(membership: Membership) -> APIClient:
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def state() -> tuple:
    """Everything a tenant request could change."""
    return (
        list(Onboarding.objects.order_by("pk").values_list("pk", "status", "current_step")),
        list(Connection.objects.order_by("pk").values_list("pk", "status",
                                                           "access_token_encrypted")),
        list(PhoneNumber.objects.order_by("pk").values_list("pk", "status")),
        list(OutboundMessage.objects.order_by("pk").values_list("pk", "status")),
        AuditLog.objects.count(),
        AnalyticsEvent.objects.count(),
        ErasureRequest.objects.count(),
    )


@pytest.fixture
def world() -> World:
    admin = MembershipFactory(role=Membership.Role.ADMIN)
    member = MembershipFactory(organization=admin.organization, role=Membership.Role.MEMBER)
    return World(admin=admin, member=member)


def call(client: APIClient, row: Row, world: World):
    if row.method == "GET":
        return client.get(row.path(world))
    return client.post(row.path(world), row.body(world), format="json")


@pytest.mark.parametrize("make_client", [session_client, token_client], ids=["session", "token"])
@pytest.mark.parametrize("role", ["admin", "member"])
@pytest.mark.parametrize("row", MATRIX, ids=[row.name for row in MATRIX])
def test_role_matrix(row, role, make_client, world, broker, settings):
    settings.WHATSAPP_SEND_MODE = "enabled"
    if row.setup:
        row.setup(world)
    client = make_client(getattr(world, role))
    allowed = role == "admin" or row.members_too
    before = state()

    response = call(client, row, world)

    if allowed:
        assert response.status_code == row.ok, response.content[:500]
        body = (b"".join(response.streaming_content) if response.streaming
                else response.json())
        assert row.done(world, body)
    else:
        assert response.status_code == 403
        assert response.json() == ADMINS_ONLY
        assert state() == before
        assert broker.published == []


def test_the_matrix_covers_every_tenant_endpoint():
    # A new endpoint must take its place in the table (and so decide who may call it).
    names = {p.name for p in whatsapp_urls.urlpatterns if isinstance(p, URLPattern)}
    assert names - {"webhook"} == {row.name for row in MATRIX}


def test_a_members_send_still_follows_the_sending_rules(world, settings):
    settings.WHATSAPP_SEND_MODE = "enabled"
    ready_to_send(world)
    response = token_client(world.member).post(
        f"{API}messages", {"type": "text", "to": "5511900000000", "text": "Oi"}, format="json")
    # Nobody wrote from that number: no 24 h window, so free text is refused for anyone.
    assert response.status_code == 409
    assert response.json()["code"] == "window_closed"
    assert OutboundMessage.objects.count() == 0


def test_a_member_promoted_to_admin_may_connect_at_once(world):
    client = token_client(world.member)
    assert client.get(f"{API}onboarding-url").status_code == 403
    Membership.objects.filter(pk=world.member.pk).update(role=Membership.Role.ADMIN)
    assert client.get(f"{API}onboarding-url").status_code == 200


@pytest.mark.urls("tests.security.views")
def test_an_endpoint_that_declares_no_permission_is_for_admins_only(world):
    # The DRF default fails closed: forgetting `permission_classes` never opens a view to members.
    assert session_client(world.admin).post("/t/undeclared").status_code == 200
    refused = session_client(world.member).post("/t/undeclared")
    assert refused.status_code == 403 and refused.json() == ADMINS_ONLY
    assert APIClient().post("/t/undeclared").status_code == 401


# --- pages ----------------------------------------------------------------------------------
PAGE = "/dashboard/settings/whatsapp"
ADMINS_ONLY_LINE = ("Somente os administradores da organização podem conectar o WhatsApp ou "
                    "alterar a conexão.")


class MainContent(HTMLParser):
    """The page's <main>: its buttons (their text) and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.buttons: list[str] = []
        self.text: list[str] = []
        self._in_main = self._in_script = False
        self._button: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        self._in_main |= tag == "main"
        self._in_script = tag == "script"
        if tag == "button" and self._in_main:
            self._button = []

    def handle_endtag(self, tag) -> None:
        if tag == "main":
            self._in_main = False
        if tag == "script":
            self._in_script = False
        if tag == "button" and self._button is not None:
            self.buttons.append(" ".join("".join(self._button).split()))
            self._button = None

    def handle_data(self, data) -> None:
        if not self._in_main or self._in_script:
            return
        self.text.append(data)
        if self._button is not None:
            self._button.append(data)

    @property
    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def page(membership: Membership, url: str = PAGE) -> MainContent:
    client = session_client(membership)
    response = client.get(url)
    assert response.status_code == 200
    return MainContent(response.content.decode())


@pytest.mark.parametrize("state_setup, status_text", [
    (None, "WhatsApp não conectado."),
    (connected, "WhatsApp conectado"),
    (awaiting_selection, "Escolha o número"),
], ids=["not-connected", "connected", "awaiting-selection"])
def test_settings_page_for_each_role(world, state_setup, status_text):
    if state_setup:
        state_setup(world)

    admin, member = page(world.admin), page(world.member)

    assert status_text in admin.visible_text and status_text in member.visible_text
    assert {"Conectar WhatsApp", "Usar este número", "Desconectar"} <= set(admin.buttons)
    assert ADMINS_ONLY_LINE not in admin.visible_text
    # The member reads the same status, has no control that changes the connection, and is
    # told why.
    assert member.buttons == []
    assert ADMINS_ONLY_LINE in member.visible_text
    assert "Conexão WhatsApp" in member.visible_text


def test_member_page_loads_no_meta_sdk(world, settings):
    settings.META_SANDBOX = False
    client = session_client(world.member)
    config = client.get(PAGE).context["page_config"]
    assert config["sdkUrl"] == "" and config["allowedOrigins"] == []
    assert session_client(world.admin).get(PAGE).context["page_config"]["sdkUrl"]


def test_home_checklist_for_each_role(world):
    admin, member = page(world.admin, "/"), page(world.member, "/")
    assert "Conectar WhatsApp" in admin.visible_text
    assert ADMINS_ONLY_LINE not in admin.visible_text
    assert "Conectar WhatsApp" not in member.visible_text
    assert "Conexão WhatsApp" in member.visible_text and "WhatsApp não conectado." in (
        member.visible_text)
    assert ADMINS_ONLY_LINE in member.visible_text

