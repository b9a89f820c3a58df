"""Issue 14 §6: the client address comes from X-Forwarded-For only through a trusted proxy."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit.models import AuditLog
from config.middleware import client_address, parse_networks
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


def lock_out(client, *, remote: str, xff: str | None, n: int = 3) -> AuditLog:
    """Fails `n` logins (the per-account limit) and returns the lockout's audit entry."""
    user = MembershipFactory().user
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    for _ in range(n):
        client.post("/login/", {"username": user.username, "password": "errada"}, **extra)
    return AuditLog.objects.get(action=AuditLog.Action.LOGIN_LOCKED_OUT, actor=user)


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    settings.LOGIN_MAX_FAILURES_PER_IP = 100


def test_untrusted_client_cannot_choose_its_address(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    entry = lock_out(client, remote="198.51.100.9", xff="1.2.3.4")
    assert entry.ip_address == "198.51.100.9"


def test_without_trusted_proxies_the_header_is_ignored(client, settings):
    settings.TRUSTED_PROXIES = []
    entry = lock_out(client, remote="10.1.2.3", xff="198.51.100.20")
    assert entry.ip_address == "10.1.2.3"


def test_behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_hop(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client wrote "1.2.3.4" itself; our proxy appended the address it saw.
    entry = lock_out(client, remote="10.0.0.5", xff="1.2.3.4, 203.0.113.77, 10.0.0.9")
    assert entry.ip_address == "203.0.113.77"


def test_per_ip_limit_cannot_be_dodged_by_rotating_the_header(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 100
    settings.LOGIN_MAX_FAILURES_PER_IP = 4
    victim = MembershipFactory().user
    for n in range(4):
        client.post("/login/", {"username": f"x{n}@x.test", "password": "errada"},
                    REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    page = client.post("/login/", {"username": victim.username, "password": "senha-forte-123"},
                       REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert "Muitas tentativas de login" in page.content.decode()


@pytest.mark.parametrize(("remote", "xff", "expected"), [
    ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
    ("10.0.0.1", "203.0.113.5, 10.9.9.9", "203.0.113.5"),
    ("10.0.0.1", "spoof, 203.0.113.5", "203.0.113.5"),
    ("10.0.0.1", "203.0.113.5, garbage", None),          # a broken hop: keep the proxy
    ("10.0.0.1", "10.0.0.2, 10.0.0.3", None),            # only our own proxies
    ("10.0.0.1", "", None),
    ("198.51.100.1", "203.0.113.5", None),               # not a trusted proxy
    ("fd00::1", "2001:db8::7", "2001:db8::7"),
    ("::ffff:10.0.0.1", "203.0.113.5", None),            # mapped form is not in 10/8
])
def test_client_address(remote, xff, expected):
    assert client_address(remote, xff, PROXIES) == expected


def test_a_bad_cidr_is_refused_at_startup():
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        parse_networks(["10.0.0.0/8", "not-a-network"])
