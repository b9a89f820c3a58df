"""Issue 14 §5a: failed logins on /login/ and /admin/login/ are throttled per account and per
client IP (Redis), with a pt-BR message, and every lockout is audited."""

import pytest
from django.core.cache import cache

from audit.models import AuditLog
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "senha-forte-123"
LOCKED = "Muitas tentativas de login sem sucesso. Tente novamente em 15 minutos."


@pytest.fixture(autouse=True)
def limits(settings):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    settings.LOGIN_MAX_FAILURES_PER_IP = 20
    settings.LOGIN_LOCKOUT_SECONDS = 900


def login(client, username: str, password: str, *, path="/login/", ip="203.0.113.7"):
    return client.post(path, {"username": username, "password": password},
                       REMOTE_ADDR=ip)


def test_wrong_passwords_lock_the_account_even_for_the_right_one(client):
    user = MembershipFactory().user
    for _ in range(5):
        page = login(client, user.username, "errada")
        assert page.status_code == 200 and "E-mail ou senha incorretos." in page.content.decode()

    page = login(client, user.username, PASSWORD)
    assert page.status_code == 200, "the right password must not log in during the lockout"
    assert LOCKED in page.content.decode()
    assert "_auth_user_id" not in client.session

    entry = AuditLog.objects.get(action=AuditLog.Action.LOGIN_LOCKED_OUT)
    assert entry.actor == user and entry.ip_address == "203.0.113.7"
    assert entry.metadata["scope"] == "account" and entry.metadata["path"] == "/login/"
    # The lockout is audited once, not once per refused attempt.
    login(client, user.username, PASSWORD)
    assert AuditLog.objects.filter(action=AuditLog.Action.LOGIN_LOCKED_OUT).count() == 1


def test_lockout_ends_and_the_right_password_then_works(client):
    user = MembershipFactory().user
    for _ in range(5):
        login(client, user.username, "errada")
    # The lock lives in Redis: when its TTL runs out the account may log in again.
    from config.cache import redis_client

    for key in redis_client().scan_iter("login:locked:*"):
        redis_client().delete(key)
    assert login(client, user.username, PASSWORD).status_code == 302


def test_success_clears_the_accounts_count(client):
    user = MembershipFactory().user
    for _ in range(4):
        login(client, user.username, "errada")
    assert login(client, user.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        login(client, user.username, "errada")
    assert login(client, user.username, PASSWORD).status_code == 302


def test_account_lock_holds_from_another_ip_and_case(client):
    user = MembershipFactory().user
    for n in range(5):
        login(client, user.username, "errada", ip=f"198.51.100.{n}")
    page = login(client, user.username.upper(), PASSWORD, ip="192.0.2.50")
    assert LOCKED in page.content.decode()


def test_one_ip_spraying_many_accounts_is_locked(client, settings):
    settings.LOGIN_MAX_FAILURES_PER_IP = 6
    victim = MembershipFactory().user
    for n in range(6):
        login(client, f"naoexiste{n}@x.test", "errada", ip="203.0.113.99")
    page = login(client, victim.username, PASSWORD, ip="203.0.113.99")
    assert LOCKED in page.content.decode()
    entry = AuditLog.objects.get(action=AuditLog.Action.LOGIN_LOCKED_OUT)
    assert entry.metadata["scope"] == "ip" and entry.target == "ip:203.0.113.99"
    # The same account from another address is not affected by that IP's lock.
    assert login(client, victim.username, PASSWORD, ip="198.51.100.1").status_code == 302


def test_admin_login_is_throttled_too(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    for _ in range(5):
        page = login(client, staff.username, "errada", path="/admin/login/")
        assert page.status_code == 200
    page = login(client, staff.username, PASSWORD, path="/admin/login/")
    assert page.status_code == 200
    assert LOCKED in page.content.decode()
    entry = AuditLog.objects.get(action=AuditLog.Action.LOGIN_LOCKED_OUT)
    assert entry.metadata["path"] == "/admin/login/"


def test_redis_down_fails_open(client, redis_down):
    user = MembershipFactory().user
    for _ in range(6):
        login(client, user.username, "errada")
    assert login(client, user.username, PASSWORD).status_code == 302
    cache.close()
