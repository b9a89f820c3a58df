"""`Config` became `PhoneNumber` (migration 0009): same table, and the Suporte group keeps the
permissions it was given under the old name."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

BEFORE = [("whatsapp", "0008_webhook_log_db_defaults")]
AFTER = [("whatsapp", "0009_rename_config_to_phonenumber")]


@pytest.mark.django_db(transaction=True)
def test_support_keeps_its_phone_number_permissions_across_the_rename():
    call_command("migrate", "whatsapp", BEFORE[0][1], verbosity=0)
    # As a database from before the rename has it: no content type under the new name yet.
    ContentType.objects.filter(app_label="whatsapp", model="phonenumber").delete()
    # Auth and content types are not touched by the rename: their current models fit.
    content_type, _ = ContentType.objects.get_or_create(app_label="whatsapp", model="config")
    view, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="view_config",
        defaults={"name": "Can view phone number"})
    group = Group.objects.create(name="Suporte (antes da migração)")
    group.permissions.add(view)

    call_command("migrate", "whatsapp", AFTER[0][1], verbosity=0)
    call_command("migrate", "whatsapp", verbosity=0)  # back to the latest, for later tests

    ContentType.objects.clear_cache()
    kept = Group.objects.get(name="Suporte (antes da migração)").permissions.get()
    assert (kept.content_type.model, kept.codename) == ("phonenumber", "view_phonenumber")
    assert not Permission.objects.filter(codename="view_config").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM whatsapp_configs")  # the seed's table, unchanged
