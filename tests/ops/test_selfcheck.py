"""`manage.py whatsapp_selfcheck` run as ops would (a separate process) against the Meta sandbox
on the live server: its Graph API (debug_token, /{app_id}/subscriptions) and the product's own
webhook URL."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection

from ops.models import Heartbeat
from ops.selfcheck import REQUIRED_FIELDS
from tests.sandbox.conftest import Sandbox, _wait_for_request_threads
from tests.support import solo_worker
from whatsapp.models import WebhookLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(live_server) -> Iterator[Sandbox]:
    client = Sandbox(live_server.url)
    client.switches(webhook_url=client.webhook_url)
    yield client
    client.api("POST", "reset")
    client.http.close()
    _wait_for_request_threads()


@pytest.fixture
def deployment_env(live_server) -> dict[str, str]:
    """The environment of a deployment whose Meta is the sandbox: the test database and Redis,
    a real secret key, DEBUG off."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "META_GRAPH_API_URL": f"{live_server.url}/sandbox/graph",
        "DJANGO_SECRET_KEY": "selfcheck-test-secret-key-" + "x" * 40,
        "DJANGO_DEBUG": "false",
    }


@pytest.fixture
def worker(deployment_env, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` on the test database and Redis: it drains the webhook inbox."""
    log = tmp_path / "worker.log"
    with solo_worker(deployment_env, log, settings.BASE_DIR) as proc:
        yield proc


def selfcheck(env: dict, sandbox: Sandbox, *args: str) -> tuple[int, dict, str]:
    done = subprocess.run(
        [sys.executable, "manage.py", "whatsapp_selfcheck", "--webhook-url", sandbox.webhook_url,
         *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout) if "--json" in args else {}
    return done.returncode, result, done.stdout + done.stderr


def failed(result: dict) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in result["checks"] if not c["ok"]}


@pytest.mark.worker
def test_selfcheck_against_the_sandbox_green_then_a_missing_field_then_a_wrong_secret(
        sandbox, deployment_env, worker):
    Heartbeat.beat("beat")

    code, result, output = selfcheck(deployment_env, sandbox, "--json")
    assert code == 0, output
    assert result["ok"] is True and failed(result) == {}
    assert [c["name"] for c in result["checks"]] == [
        "settings", "database", "redis", "broker", "beat", "graph", "app_token",
        "webhook_fields", "webhook_round_trip"]
    trip = next(c for c in result["checks"] if c["name"] == "webhook_round_trip")
    assert "stored and processed" in trip["detail"]
    assert not WebhookLog.objects.exists()  # the test delivery was removed
    code, _, output = selfcheck(deployment_env, sandbox)
    print(output)  # the README's sample (pytest -s)
    assert code == 0 and output.splitlines()[-1] == "all checks passed", output

    # The app unticked `history` in the App Dashboard: only that check fails, naming the field.
    sandbox.switches(app_fields=[f for f in REQUIRED_FIELDS if f != "history"])
    code, result, output = selfcheck(deployment_env, sandbox, "--json")
    assert code == 1, output
    assert list(failed(result)) == ["webhook_fields"]
    assert "missing fields: history" in failed(result)["webhook_fields"]
    sandbox.switches(app_fields=list(REQUIRED_FIELDS))

    # A wrong app secret: Meta refuses the app token and the product refuses the signature.
    wrong = {**deployment_env, "META_APP_SECRET": "not-the-app-secret"}
    code, result, output = selfcheck(wrong, sandbox, "--json")
    assert code == 1, output
    assert set(failed(result)) == {"app_token", "webhook_fields", "webhook_round_trip"}
    assert "answered 403" in failed(result)["webhook_round_trip"]
    assert "not-the-app-secret" not in output and settings.META_APP_SECRET not in output
    assert not WebhookLog.objects.exists()


def test_without_workers_the_round_trip_fails_by_name_and_the_row_is_removed(
        sandbox, deployment_env):
    Heartbeat.beat("beat")
    code, _, output = selfcheck(deployment_env, sandbox, "--timeout", "1")
    assert code == 1, output
    lines = output.splitlines()
    assert lines[-1] == "FAILED: webhook_round_trip"
    assert any(line.startswith("FAIL webhook_round_trip") and "still received" in line
               for line in lines)
    assert sum(line.startswith("ok  ") for line in lines) == 8
    assert not WebhookLog.objects.exists()
    assert settings.META_APP_SECRET not in output


def test_production_like_settings_are_required(sandbox, deployment_env):
    env = {**deployment_env, "DJANGO_DEBUG": "true"}
    env.pop("DJANGO_SECRET_KEY")
    code, result, output = selfcheck(env, sandbox, "--json", "--timeout", "1")
    assert code == 1, output
    detail = failed(result)["settings"]
    assert "DEBUG is on" in detail and "DJANGO_SECRET_KEY is the development default" in detail
