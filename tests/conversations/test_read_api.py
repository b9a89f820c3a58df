"""The conversation read API: cursor pages, `since`, number and direction filters, search,
pt-BR 400s for bad parameters and 404 for another organization's objects."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from organizations.models import ApiToken, Membership
from tests.factories import (
    ContactFactory,
    ContactIdentityFactory,
    MembershipFactory,
    PhoneNumberFactory,
)
from whatsapp.models import Message

API = "/api/v1/whatsapp"


@pytest.fixture
def numbers(org):
    return [PhoneNumberFactory(connection__organization=org,
                               phone_number_id=f"30400000000010{i}") for i in (1, 2)]


def add(contact, config, n, *, direction="inbound", source="cloud_api", at=None, type_="text"):
    return Message.objects.create(
        organization=contact.organization, config=config, contact=contact,
        wamid=f"wamid.{contact.pk}.{config.pk}.{n}.{direction}.{source}", direction=direction,
        source=source, type=type_, body=f"m{n}", timestamp=at or timezone.now())


def test_messages_in_cursor_pages_with_since_and_filters(api, org, numbers):
    contact = ContactFactory(organization=org)
    start = timezone.now() - timedelta(hours=1)
    for n in range(5):  # two share a timestamp: the cursor must not skip or repeat
        add(contact, numbers[n % 2], n, at=start + timedelta(minutes=min(n, 3)))
    add(contact, numbers[0], 10, direction="outbound", at=start + timedelta(minutes=20))
    add(contact, numbers[0], 11, direction="outbound", source="phone_app",
        at=start + timedelta(minutes=30))
    add(contact, numbers[0], 12, type_="system", at=start + timedelta(minutes=40))

    url = f"{API}/contacts/{contact.pk}/messages"
    seen, cursor = [], None
    while True:
        body = api.get(url, {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["text"] for m in body["messages"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert seen == ["m0", "m1", "m2", "m3", "m4", "m10", "m11"]  # oldest first; no system

    directions = {d: [m["text"] for m in api.get(url, {"direction": d}).json()["messages"]]
                  for d in ("inbound", "outbound", "echo")}
    assert directions == {"inbound": ["m0", "m1", "m2", "m3", "m4"], "outbound": ["m10"],
                          "echo": ["m11"]}
    second = api.get(url, {"phoneNumberId": numbers[1].phone_number_id}).json()["messages"]
    assert [m["text"] for m in second] == ["m1", "m3"]
    since = (start + timedelta(minutes=3)).isoformat()
    assert [m["text"] for m in api.get(url, {"since": since}).json()["messages"]] == [
        "m3", "m4", "m10", "m11"]


def test_contacts_with_every_identity_filtered_and_searched(api, org, numbers):
    phone_lead = ContactFactory(organization=org, profile_name="Mariana Souza")
    ContactIdentityFactory(contact=phone_lead)
    ContactIdentityFactory(contact=phone_lead, kind="phone", value=phone_lead.wa_id)
    username_lead = ContactFactory(organization=org, wa_id="", username="carla.imoveis",
                                   profile_name="Carla M.")
    ContactIdentityFactory(contact=username_lead)
    add(phone_lead, numbers[0], 1)
    add(username_lead, numbers[1], 2)

    listed = api.get(f"{API}/contacts").json()["contacts"]
    assert [c["id"] for c in listed] == [username_lead.pk, phone_lead.pk]
    carla = listed[0]
    assert (carla["phone"], carla["userId"], carla["username"]) == (
        None, username_lead.user_id, "carla.imoveis")
    assert {i["kind"] for i in carla["identities"]} == {"user_id", "username"}
    assert {i["kind"] for i in listed[1]["identities"]} == {"user_id", "phone"}

    by_number = api.get(f"{API}/contacts", {"phoneNumberId": numbers[0].phone_number_id})
    assert [c["id"] for c in by_number.json()["contacts"]] == [phone_lead.pk]
    assert [c["id"] for c in api.get(f"{API}/contacts", {"search": "carla"}).json()[
        "contacts"]] == [username_lead.pk]
    assert [c["id"] for c in api.get(f"{API}/contacts", {"search": phone_lead.wa_id[-6:]})
            .json()["contacts"]] == [phone_lead.pk]
    page = api.get(f"{API}/contacts", {"limit": 1}).json()
    rest = api.get(f"{API}/contacts", {"limit": 1, "cursor": page["nextCursor"]}).json()
    assert [c["id"] for c in page["contacts"] + rest["contacts"]] == [
        username_lead.pk, phone_lead.pk]
    assert rest["nextCursor"] is None


def test_bad_parameters_are_refused_in_portuguese(api, org, numbers):
    contact = ContactFactory(organization=org)
    url = f"{API}/contacts/{contact.pk}/messages"
    for params in ({"since": "ontem"}, {"direction": "sideways"}, {"cursor": "forged"},
                   {"limit": 0}, {"phoneNumberId": "abc"}):
        response = api.get(url, params)
        assert response.status_code == 400, params
        # DRF's own pt-BR catalogue spells it "Certifque".
        assert any(w in response.json()["error"] for w in (
            "inválid", "Certifque", "válid", "formato", "escolha", "padrão")), response.json()
    assert api.get(url, {"cursor": "forged"}).json()["details"]["cursor"] == [
        "Cursor inválido: use o nextCursor da página anterior."]


def test_another_organizations_objects_answer_404(api, org, numbers):
    other = MembershipFactory()
    theirs = ContactFactory(organization=other.organization)
    other_number = PhoneNumberFactory(connection__organization=other.organization)
    add(theirs, other_number, 1)
    assert api.get(f"{API}/contacts/{theirs.pk}/messages").status_code == 404
    assert api.post(f"{API}/contacts/{theirs.pk}/request-phone", {},
                    format="json").status_code == 404
    assert api.get(f"{API}/contacts", {"phoneNumberId": other_number.phone_number_id}
                   ).status_code == 404
    assert theirs.pk not in [c["id"] for c in api.get(f"{API}/contacts").json()["contacts"]]


def test_members_may_read(org, numbers):
    member = MembershipFactory(organization=org, role=Membership.Role.MEMBER)
    _, raw = ApiToken.issue(user=member.user, organization=org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(f"{API}/contacts").status_code == 200
    assert APIClient().get(f"{API}/contacts").status_code in (401, 403)


def test_the_read_api_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/whatsapp/contacts", "/api/v1/whatsapp/contacts/{contact_id}/messages",
                 "/api/v1/whatsapp/contacts/{contact_id}/request-phone",
                 "/api/v1/whatsapp/media/{token}"):
        assert path in schema["paths"], path
    params = {p["name"] for p in schema["paths"][
        "/api/v1/whatsapp/contacts/{contact_id}/messages"]["get"]["parameters"]}
    assert {"cursor", "since", "direction", "phoneNumberId", "limit"} <= params
