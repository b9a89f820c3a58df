from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken, Membership


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`: the user and organization the token was issued for.

    A token answers only while it is not revoked, its user is active and the user is still a
    member of the token's organization (a removed membership or a deactivated user also revokes
    the tokens, see `organizations.signals`; the membership check here covers any token that
    escaped that, e.g. a membership deleted with raw SQL).
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid bearer header.")
        token_hash = ApiToken.hash(header[1].decode(errors="replace"))
        del header  # the raw token goes no further than its hash
        live_membership = Membership.objects.filter(
            user=OuterRef("user"), organization=OuterRef("organization")
        )
        token = (
            ApiToken.objects.active()
            .filter(token_hash=token_hash, user__is_active=True)
            .filter(Exists(live_membership))
            .select_related("user", "organization")
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        # Throttled write: at most once a minute per token, to keep reads cheap.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        request.organization = token.organization
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated calls.
        return self.keyword
