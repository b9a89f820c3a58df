"""The app's own Graph nodes in the sandbox, read with the app token `APP_ID|APP_SECRET` as
Meta answers them: debug_token of the app token, and `GET /{app_id}/subscriptions`."""

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

APP_TOKEN = f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"


def test_debug_token_of_the_app_token_is_a_valid_app_token(sandbox):
    response = sandbox.graph("GET", "debug_token", params={"input_token": APP_TOKEN,
                                                           "access_token": APP_TOKEN})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["type"], data["is_valid"], data["app_id"]) == ("APP", True, settings.META_APP_ID)


def test_subscriptions_list_the_ticked_fields_and_follow_the_switch(sandbox):
    response = sandbox.graph("GET", f"{settings.META_APP_ID}/subscriptions", token=APP_TOKEN)
    assert response.status_code == 200, response.text
    [subscription] = response.json()["data"]
    assert subscription["object"] == "whatsapp_business_account"
    assert subscription["active"] is True
    assert subscription["callback_url"] == sandbox.webhook_url
    names = [f["name"] for f in subscription["fields"]]
    assert {"messages", "account_update", "history", "smb_app_state_sync",
            "smb_message_echoes"} <= set(names)

    sandbox.switches(app_fields=["messages"])
    response = sandbox.graph("GET", f"{settings.META_APP_ID}/subscriptions", token=APP_TOKEN)
    assert [f["name"] for f in response.json()["data"][0]["fields"]] == ["messages"]


def test_subscriptions_refuse_a_wrong_app_secret_and_another_app(sandbox):
    wrong = sandbox.graph("GET", f"{settings.META_APP_ID}/subscriptions",
                          token=f"{settings.META_APP_ID}|wrong-secret")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 190
    other = sandbox.graph("GET", "999999999/subscriptions", token=APP_TOKEN)
    assert other.status_code == 400 and other.json()["error"]["code"] == 100
    assert sandbox.api("POST", "switches", json={"app_fields": "messages"}).status_code == 400
