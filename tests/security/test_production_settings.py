"""Issue 14 §6: defaults that fail closed. Each case starts a fresh interpreter, as a deploy
would (settings are read once, at start-up)."""

import subprocess
import sys

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import UserFactory

KEY = "3f" * 32


def production_env(**overrides: str) -> dict[str, str]:
    """The documented production environment (README), with throwaway values."""
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/tmp",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "k3Jx9-throwaway-production-secret-key-for-tests-only-0a9Zq",
        "DJANGO_ALLOWED_HOSTS": "app.qualifica.example",
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "REDIS_URL": "redis://127.0.0.1:6379/0",
        "META_APP_ID": "1", "META_CONFIG_ID": "2", "META_APP_SECRET": "3",
        "META_WEBHOOK_VERIFY_TOKEN": "4", "TOKEN_ENCRYPTION_KEY": KEY,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("entry", [
    ["manage.py", "check"],
    ["-c", "import config.wsgi"],
    ["-c", "from config.celery import app; import django; django.setup()"],
])
def test_entry_points_default_to_production(entry):
    # No DJANGO_SETTINGS_MODULE and no secrets: production refuses, naming what is missing.
    proc = run(entry, {"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert proc.returncode != 0
    assert "Production settings need these environment variables" in proc.stderr
    assert "DJANGO_SECRET_KEY" in proc.stderr


@pytest.mark.parametrize(("overrides", "named"), [
    ({"TOKEN_ENCRYPTION_KEY": "z" * 64}, "TOKEN_ENCRYPTION_KEY must be 64 hex"),
    ({"TOKEN_ENCRYPTION_KEY": "ab" * 31}, "TOKEN_ENCRYPTION_KEY must be 64 hex"),
    ({"TOKEN_ENCRYPTION_OLD_KEYS": f"{'cd' * 32},{'q' * 64}"},
     "TOKEN_ENCRYPTION_OLD_KEYS (entry 2) must be 64 hex"),
])
def test_malformed_encryption_keys_are_refused_at_startup(overrides, named):
    proc = run(["-c", "import django; django.setup()"], production_env(**overrides))
    assert proc.returncode != 0
    assert named in proc.stderr
    for value in overrides.values():
        for part in value.split(","):
            assert part not in proc.stderr, "the message must never print a key"


def test_a_malformed_trusted_proxy_is_refused_at_startup():
    proc = run(["-c", "import django; django.setup()"],
               production_env(TRUSTED_PROXIES="10.0.0.0/8,proxy.internal"))
    assert proc.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or CIDR" in proc.stderr


def test_check_deploy_passes_with_the_documented_environment():
    proc = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout


def test_production_refuses_weak_passwords():
    code = ("import django; django.setup()\n"
            "from django.contrib.auth.password_validation import validate_password\n"
            "from django.contrib.auth.models import User\n"
            "from django.core.exceptions import ValidationError\n"
            "user = User(username='mariana.souza', email='mariana.souza@sol.com.br')\n"
            "for p in ['40718293561', 'password123', 'mariana.souza']:\n"
            "    try:\n"
            "        validate_password(p, user)\n"
            "        print('accepted', p)\n"
            "    except ValidationError as e:\n"
            "        print('refused', p, e.error_list[0].code)\n")
    proc = run(["-c", code], production_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert "refused 40718293561 password_entirely_numeric" in lines
    assert "refused password123 password_too_common" in lines
    assert "refused mariana.souza password_too_similar" in lines


def test_production_security_defaults():
    code = ("import django; django.setup()\n"
            "from django.conf import settings as s\n"
            "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
            " s.SECURE_HSTS_PRELOAD, s.API_SCHEMA_PUBLIC, s.TRUSTED_PROXIES)\n")
    proc = run(["-c", code], production_env())
    assert proc.stdout.strip() == "False True True False False []", proc.stderr
    proc = run(["-c", code], production_env(DJANGO_SECURE_SSL_REDIRECT="false",
                                            API_SCHEMA_PUBLIC="true",
                                            TRUSTED_PROXIES="10.0.0.0/8"))
    assert proc.stdout.strip() == "False False True False True ['10.0.0.0/8']", proc.stderr


@pytest.mark.django_db
def test_schema_is_staff_only_unless_public(settings):
    settings.API_SCHEMA_PUBLIC = False
    assert APIClient().get("/api/schema/").status_code in (401, 403)
    staff = APIClient()
    staff.force_login(UserFactory(is_staff=True))
    assert staff.get("/api/schema/").status_code == 200
    settings.API_SCHEMA_PUBLIC = True
    assert APIClient().get("/api/schema/").status_code == 200
