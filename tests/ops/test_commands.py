"""The ops commands: schedules, status, expiry, key rotation, and the beat models in the admin."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ConnectionFactory, OnboardingFactory
from tests.ingest_support import run_command
from whatsapp.core import crypto

pytestmark = pytest.mark.django_db


def test_beat_models_are_in_the_admin(client, django_user_model):
    from django_celery_beat.models import PeriodicTask

    run_command("setup_schedules")  # normally from the migration; a transactional test may flush it
    client.force_login(django_user_model.objects.create_superuser("s@q.test", "s@q.test", "x"))
    page = client.get("/admin/django_celery_beat/periodictask/")
    assert page.status_code == 200 and b"webhook retry sweep" in page.content
    task = PeriodicTask.objects.get(name="token health")
    form = client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    assert form.status_code == 200 and b"ops.tasks.token_health" in form.content
    assert client.get("/admin/ops/alertstate/").status_code == 200


# --- schedules ------------------------------------------------------------------------------
def test_setup_schedules_is_idempotent_and_keeps_admin_edits():
    from django_celery_beat.models import PeriodicTask

    # The data migration created them; a transactional test may have flushed them since.
    run_command("setup_schedules")
    PeriodicTask.objects.filter(name="webhook retry sweep").update(enabled=False)
    assert set(run_command("setup_schedules").values()) == {"kept"}
    assert not PeriodicTask.objects.get(name="webhook retry sweep").enabled
    token = PeriodicTask.objects.get(name="token health")
    assert (token.crontab.hour, token.crontab.minute, str(token.crontab.timezone)) == (
        "2", "0", "America/Sao_Paulo")
    assert run_command("setup_schedules", "--reset")["webhook retry sweep"] == "reset"
    assert PeriodicTask.objects.get(name="webhook retry sweep").enabled
    sweep = PeriodicTask.objects.get(name="webhook retry sweep").interval
    assert 30 <= sweep.every <= 60 and sweep.period == "seconds"


# --- other commands -------------------------------------------------------------------------
def test_whatsapp_status_for_one_org_and_all(org):
    ConnectionFactory(organization=org)
    one = run_command("whatsapp_status", "--org", org.slug)
    assert one["organization_id"] == str(org.pk) and len(one["connections"]) == 1
    everything = run_command("whatsapp_status")
    assert everything["platform"]["connections"] == {"connected": 1}
    with pytest.raises(CommandError, match="No organization"):
        call_command("whatsapp_status", "--org", "nope")


def test_expire_onboardings_command():
    OnboardingFactory(expires_at=timezone.now() - timedelta(minutes=1))
    assert run_command("expire_onboardings") == {"expired": 1}


def test_rotate_encryption_key_reencrypts_tokens_and_pins(settings):
    from whatsapp.models import PhoneNumber

    old_key, new_key = "11" * 32, "22" * 32
    connection = ConnectionFactory(with_token=True)
    config = PhoneNumber.objects.create(connection=connection, phone_number_id="999",
                                   registration_pin_encrypted=crypto.encrypt("654321"))
    settings.TOKEN_ENCRYPTION_KEY, settings.TOKEN_ENCRYPTION_OLD_KEYS = new_key, [old_key]
    dry = run_command("rotate_encryption_key", "--dry-run")
    assert dry["rotated"] == 2 and "654321" not in json.dumps(dry)
    result = run_command("rotate_encryption_key")
    assert result["rotated"] == 2 and result["failed"] == []
    settings.TOKEN_ENCRYPTION_OLD_KEYS = []  # the old key can go now
    connection.refresh_from_db()
    config.refresh_from_db()
    assert connection.get_access_token() == "EAAGtenanttoken123456"
    assert crypto.decrypt(config.registration_pin_encrypted) == "654321"
    assert run_command("rotate_encryption_key")["rotated"] == 0
    assert AuditLog.objects.filter(action="KEY_ROTATED").count() == 1
