"""Token health: ask Meta (`debug_token`, with the app token) whether each stored token works.

`is_valid: false` or Graph error 190 → the connection's token is invalid (the tenant's page then
says "Sessão expirada. Clique para reconectar.") and TOKEN_INVALIDATED is audited once. Network
trouble and other transient Graph errors change nothing: a flaky Meta must not log tenants out.
A valid token also refreshes its numbers' health (quality rating, the portfolio's messaging
limit) from `GET /{waba}/phone_numbers`.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from whatsapp.conversations.numbers import numbers_health_apply
from whatsapp.core.crypto import DecryptionError
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection

from .connections import connection_token_invalidate

logger = logging.getLogger(__name__)
ACTOR = "token-health"


@dataclass
class TokenCheck:
    connection_id: str
    waba_id: str
    result: str  # valid | invalid | missing | error
    expires_at: datetime | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        return {"connection_id": self.connection_id, "waba_id": self.waba_id,
                "result": self.result, "detail": self.detail,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def connection_check_token(connection: Connection, *,
                           client: GraphClient | None = None) -> TokenCheck:
    check = TokenCheck(str(connection.pk), connection.waba_id, "missing")
    try:
        token = connection.get_access_token()
    except DecryptionError:
        # A key problem on our side, not a revoked token: report it, do not log the tenant out.
        check.result, check.detail = "error", "token could not be decrypted (encryption keys)"
        return check
    if not token:
        return check
    client = client or GraphClient()
    now = timezone.now()
    try:
        data = client.debug_token(token)
    except GraphError as exc:
        if exc.code == 190:
            return _invalidate(connection, check, f"Graph error {exc.code}")
        check.result, check.detail = "error", f"transient: {exc.code or exc.status}"
        return check
    if not data.get("is_valid"):
        return _invalidate(connection, check, "is_valid false")
    expires = int(data.get("expires_at") or 0)
    # 0 means the token never expires (system-user tokens).
    check.expires_at = datetime.fromtimestamp(expires, tz=UTC) if expires else None
    check.result = "valid"
    Connection.objects.filter(pk=connection.pk).update(
        token_status=Connection.TokenStatus.VALID, token_expires_at=check.expires_at,
        token_checked_at=now,
    )
    numbers_health_refresh(connection, token)
    return check


def numbers_health_refresh(connection: Connection, token: str) -> None:
    """With a token known to work: the numbers' quality rating and the portfolio's messaging
    limit, read again from Graph (limits change as the portfolio grows). Best effort: Meta's
    trouble here says nothing about the token."""
    if not connection.phone_numbers.exists():
        return
    try:
        numbers = GraphClient(token).phone_numbers(connection.waba_id)
    except GraphError as exc:
        logger.info("Number health of WABA %s not refreshed: %s", connection.waba_id, exc)
        return
    numbers_health_apply(connection, numbers)


def _invalidate(connection: Connection, check: TokenCheck, reason: str) -> TokenCheck:
    check.result, check.detail = "invalid", reason
    # Audited once per transition, however many checks (or pipeline runs) see it.
    if connection_token_invalidate(connection, reason=reason, actor_label=ACTOR):
        logger.warning("Token of WABA %s is invalid (%s)", connection.waba_id, reason)
    return check


def tokens_check(*, organization=None) -> list[TokenCheck]:
    """Checks every live connection that holds a token (of one organization, or all)."""
    qs = Connection.objects.active().exclude(access_token_encrypted="").select_related(
        "organization")
    if organization is not None:
        qs = qs.filter(organization=organization)
    client = GraphClient()
    return [connection_check_token(c, client=client) for c in qs.order_by("created_at")]
