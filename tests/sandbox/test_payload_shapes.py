"""The sandbox's webhook bodies have the key structure of Meta's samples in shared/meta-payloads.

The events are fired through the sandbox's HTTP API and read back from its state, so what is
compared is what the sandbox really sends.
"""

import json
from typing import Any

import pytest

from tests.meta import PAYLOADS_DIR

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = {
    "partner_added": "account_update_partner_added.json",
    "partner_app_installed": "account_update_partner_app_installed.json",
    "partner_app_uninstalled": "account_update_partner_app_uninstalled.json",
    "partner_removed": "account_update_partner_removed.json",
    "partner_removed_coexistence": "account_update_partner_removed_coexistence.json",
    "partner_removed_guide_shape": "account_update_partner_removed_coexistence_guide_shape.json",
    "account_offboarded": "account_update_account_offboarded.json",
    "account_reconnected": "account_update_account_reconnected.json",
    "account_violation": "account_update_account_violation.json",
    "account_restriction": "account_update_account_restriction.json",
    "text": "messages_text_inbound.json",
    "ctwa_referral": "messages_text_inbound_ctwa_referral.json",
    "text_username": "messages_text_inbound_username_no_phone.json",
    "unsupported": "messages_unsupported_131060_coexistence.json",
    "status_sent": "messages_status_sent.json",
    "status_delivered": "messages_status_delivered.json",
    "status_read": "messages_status_read.json",
    "status_failed": "messages_status_failed.json",
    "echo_text": "smb_message_echoes_text.json",
    "echo_revoke": "smb_message_echoes_revoke.json",
    "history_phase0": "history_phase0_chunk1.json",
    "history_phase1_chunk1": "history_phase1_chunk1.json",
    "history_phase1_chunk2": "history_phase1_chunk2.json",
    "history_phase2": "history_phase2_final.json",
    "history_media": "history_media_asset_user_sent.json",
    "history_declined": "history_declined.json",
    "contacts_add": "smb_app_state_sync_add.json",
    "contacts_remove": "smb_app_state_sync_remove.json",
    "template_approved": "message_template_status_update_approved.json",
    "template_rejected": "message_template_status_update_rejected.json",
    "quality_update": "phone_number_quality_update_throughput_upgrade.json",
    "user_changed_number": "messages_system_user_changed_number.json",
    "user_changed_user_id": "messages_system_user_changed_user_id.json",
}


def shape(value: Any) -> Any:
    """Key structure and scalar types; list items merged (a list's shape is its items' union)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = merge(merged, shape(item))
        return [merged]
    return type(value).__name__


def merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}
    return a if a == b else sorted({str(a), str(b)})


def test_every_kind_has_a_fixture_or_a_reason(sandbox):
    kinds = sandbox.api("POST", "events", json={"kind": "nope"}).json()["error"]
    # image: inbound media, Meta's shape is the history media follow-up's. contact_shared: the
    # answer to a contact-information request has no fixture in shared/meta-payloads (its
    # shape is Meta's contacts message plus `origin`, as BSP docs describe it).
    without_fixture = {"image", "contact_shared"}
    # Template webhooks documented in META-PLATFORM.md §0 without a sample body in the fixtures:
    # their shape is checked against the documented keys below.
    without_fixture |= set(TEMPLATE_WEBHOOK_KEYS)
    listed = set(kinds.split("valid kinds: ")[1].split(", "))
    assert listed == set(FIXTURES) | without_fixture


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_payload_shape_matches_the_fixture(sandbox, kind):
    response = sandbox.api("POST", "events", json={"kind": kind})
    assert response.status_code == 202, response.text
    (delivery,) = sandbox.state()["deliveries"]
    expected = json.loads((PAYLOADS_DIR / FIXTURES[kind]).read_bytes())
    assert shape(delivery["payload"]) == shape(expected)


# META-PLATFORM.md §0 (template webhooks): the value's keys of each sandbox kind.
TEMPLATE_WEBHOOK_KEYS = {
    "template_category_update": ("template_category_update", {
        "message_template_id", "message_template_name", "message_template_language",
        "previous_category", "new_category"}),
    "template_category_upcoming": ("template_category_update", {
        "message_template_id", "message_template_name", "message_template_language",
        "correct_category", "new_category", "category_update_timestamp"}),
    "template_quality_update": ("message_template_quality_update", {
        "previous_quality_score", "new_quality_score", "message_template_id",
        "message_template_name", "message_template_language"}),
}


@pytest.mark.parametrize("kind", sorted(TEMPLATE_WEBHOOK_KEYS))
def test_template_webhooks_have_the_documented_keys(sandbox, kind):
    field, keys = TEMPLATE_WEBHOOK_KEYS[kind]
    assert sandbox.api("POST", "events", json={"kind": kind}).status_code == 202
    (delivery,) = sandbox.state()["deliveries"]
    (entry,) = delivery["payload"]["entry"]
    (change,) = entry["changes"]
    assert change["field"] == field
    assert set(change["value"]) == keys
    assert isinstance(entry["time"], int)  # entry.id is the WABA and time is present (§0)
