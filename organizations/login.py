"""Failed-login throttling for `/login/` and `/admin/login/` (issue 14 §5), on the Redis limiter.

Every failed attempt counts twice, in fixed windows of `LOGIN_LOCKOUT_SECONDS`: once for the
account (the normalized username, hashed in the key) and once for the client IP (`REMOTE_ADDR`,
i.e. the client once `TrustedProxyMiddleware` resolved it). When a count reaches its limit
(`LOGIN_MAX_FAILURES_PER_ACCOUNT`, `LOGIN_MAX_FAILURES_PER_IP`) that account or IP is locked for
`LOGIN_LOCKOUT_SECONDS`: every attempt, even with the right password, gets the pt-BR "too many
attempts" message without the password being checked. The start of each lockout is audited
(`LOGIN_LOCKED_OUT`). A successful login clears the account's count (not the IP's).

Like the other limits, it fails open: with Redis down (or on the embedded default, which has no
Redis) logins are not throttled.
"""

import hashlib
import logging
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.models import AuditLog
from audit.services import audit_record
from config.cache import redis_client
from config.ratelimit import hit

logger = logging.getLogger(__name__)


def _idents(username: str, ip: str | None) -> list[tuple[str, str, int]]:
    """(scope, ident, limit) of the account and of the IP."""
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    idents = [("account", account, settings.LOGIN_MAX_FAILURES_PER_ACCOUNT)]
    if ip:
        idents.append(("ip", ip, settings.LOGIN_MAX_FAILURES_PER_IP))
    return idents


def _lock_key(scope: str, ident: str) -> str:
    return f"login:locked:{scope}:{ident}"


def locked_for(username: str, ip: str | None) -> int:
    """Seconds until this account and IP may try again (0: not locked)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        for scope, ident, _limit in _idents(username, ip):
            pipe.ttl(_lock_key(scope, ident))
        ttls = pipe.execute()
    except NotImplementedError:
        return 0
    except Exception:
        logger.warning("Login limiter unavailable; not throttling")
        return 0
    return max([int(t) for t in ttls if t and int(t) > 0] or [0])


def record_failure(username: str, request) -> None:
    """Counts one failed login; locks (and audits) an account or IP reaching its limit."""
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    window = settings.LOGIN_LOCKOUT_SECONDS
    for scope, ident, limit in _idents(username, ip):
        result = hit(f"login-failed:{scope}", ident, limit=limit, window=window)
        if result.count < limit:
            continue
        try:
            started = redis_client().set(_lock_key(scope, ident), "1", nx=True, ex=window)
        except Exception:
            logger.warning("Login limiter unavailable; not locking")
            continue
        if started:
            _audit_lockout(scope, username, ip, result.count, request)


def record_success(username: str) -> None:
    try:
        client = redis_client()
        scope, ident, _limit = _idents(username, None)[0]
        bucket = int(time.time() // settings.LOGIN_LOCKOUT_SECONDS)  # the window `hit` counts in
        client.delete(f"ratelimit:login-failed:{scope}:{ident}:{bucket}")
    except Exception:  # NotImplementedError (no Redis) or Redis down: nothing to clear
        return


def _audit_lockout(scope: str, username: str, ip: str | None, failures: int, request) -> None:
    user = get_user_model().objects.filter(
        **{f"{get_user_model().USERNAME_FIELD}__iexact": username.strip()}
    ).first()
    logger.warning("Login locked out (%s) after %d failures", scope, failures)
    audit_record(
        action=AuditLog.Action.LOGIN_LOCKED_OUT,
        actor=user,
        actor_label="login",
        target=f"{scope}:{ip}" if scope == "ip" else f"account:{username.strip()[:150]}",
        metadata={"scope": scope, "failures": failures, "path": request.path if request else "",
                  "lockout_seconds": settings.LOGIN_LOCKOUT_SECONDS},
        request=request,
    )


def throttled_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed login attempts. Try again in %(minutes)d minute.",
        "Too many failed login attempts. Try again in %(minutes)d minutes.", minutes,
    ) % {"minutes": minutes}


class ThrottledLoginMixin:
    """For Django's authentication forms: refuses locked accounts/IPs before the password is
    checked, and counts every failure."""

    throttled_message = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # People log in with their e-mail (it is their username).
        self.fields["username"].label = _("E-mail")

    def clean(self):
        username = self.cleaned_data.get("username")
        ip = self.request.META.get("REMOTE_ADDR") if self.request is not None else None
        if username and self.cleaned_data.get("password"):
            wait = locked_for(username, ip)
            if wait:
                self.throttled_message = throttled_message(wait)
                raise forms.ValidationError(self.throttled_message, code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                record_failure(username, self.request)
            raise
        if username and self.get_user() is not None:
            record_success(username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
