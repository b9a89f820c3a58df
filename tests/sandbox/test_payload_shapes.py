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
    without_fixture = {"image"}  # inbound media: Meta's shape is the history media follow-up's
    listed = set(kinds.split("valid kinds: ")[1].split(", "))
    assert listed == set(FIXTURES) | without_fixture


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_payload_shape_matches_the_fixture(sandbox, kind):
    response = sandbox.api("POST", "events", json={"kind": kind})
    assert response.status_code == 202, response.text
    (delivery,) = sandbox.state()["deliveries"]
    expected = json.loads((PAYLOADS_DIR / FIXTURES[kind]).read_bytes())
    assert shape(delivery["payload"]) == shape(expected)
