import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from organizations.models import ApiToken, Membership, Organization
from tests.ingest_support import run_command

pytestmark = pytest.mark.django_db



def test_create_organization_prints_json_and_the_token_works():
    result = run_command("create_organization", "Imobiliária Sol", "--admin-email", "a@sol.com.br",
                      "--password", "s3nha-forte")

    org = Organization.objects.get(pk=result["organization_id"])
    assert org.name == "Imobiliária Sol"
    assert org.slug == "imobiliaria-sol"
    membership = Membership.objects.get(organization=org)
    assert membership.user_id == result["user_id"]
    assert membership.role == Membership.Role.ADMIN
    assert membership.user.check_password("s3nha-forte")
    # Only the hash is stored.
    assert not ApiToken.objects.filter(token_hash=result["token"]).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {result['token']}")
    assert client.get("/api/v1/whatsapp/check-connection").status_code == 200


def test_create_api_token_by_slug_and_by_id():
    created = run_command("create_organization", "Casa Azul", "--admin-email", "b@azul.com.br",
                       "--password", "x-senha-123")
    by_slug = run_command("create_api_token", "--email", "b@azul.com.br",
                       "--organization", "casa-azul")
    by_id = run_command("create_api_token", "--email", "b@azul.com.br",
                     "--organization", created["organization_id"])
    assert by_slug["organization_id"] == by_id["organization_id"] == created["organization_id"]
    assert by_slug["token"] != by_id["token"]
    assert ApiToken.objects.count() == 3


@pytest.mark.parametrize("args,message", [
    (["--email", "nobody@x.com", "--organization", "casa-azul"], "No user"),
    (["--email", "b@azul.com.br", "--organization", "missing"], "No organization"),
])
def test_create_api_token_errors_are_clear(args, message):
    run_command("create_organization", "Casa Azul", "--admin-email", "b@azul.com.br")
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)


def test_create_organization_rejects_a_bad_email():
    with pytest.raises(CommandError, match="not a valid e-mail"):
        call_command("create_organization", "X", "--admin-email", "not-an-email")
    assert not Organization.objects.exists()


def test_same_name_gets_a_distinct_slug():
    a = run_command("create_organization", "Sol", "--admin-email", "a@sol.com.br")
    b = run_command("create_organization", "Sol", "--admin-email", "c@sol.com.br")
    assert a["organization_slug"] == "sol" and b["organization_slug"] == "sol-2"


def django_setup(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`django.setup()` in a fresh interpreter with only `env` (settings are read at startup)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )


def test_production_settings_refuse_to_start_without_secrets():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "HOME": "/tmp"}
    proc = django_setup(env)
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY" in proc.stderr
    assert "META_APP_SECRET" in proc.stderr
    assert "TOKEN_ENCRYPTION_KEY" in proc.stderr


def test_production_settings_refuse_the_sandbox():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "HOME": "/tmp", "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_ALLOWED_HOSTS": "example.com",
           "DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h:6379/0",
           "META_APP_ID": "1", "META_CONFIG_ID": "2", "META_APP_SECRET": "3",
           "META_WEBHOOK_VERIFY_TOKEN": "4", "TOKEN_ENCRYPTION_KEY": "ab" * 32,
           "META_SANDBOX": "true"}
    proc = django_setup(env)
    assert proc.returncode != 0
    assert "META_SANDBOX" in proc.stderr
    env["META_SANDBOX"] = "false"
    proc = django_setup(env)
    assert proc.returncode == 0, proc.stderr
