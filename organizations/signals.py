"""Access ends when it should: API tokens die with the membership or the user that carried them.

- A membership deleted on its own (the admin, a shell, a queryset) revokes the user's tokens for
  that organization. Deleting the organization or the user deletes the tokens by cascade.
- A user switched from active to inactive gets every token revoked, in every organization.

Both are audited (`API_TOKENS_REVOKED`). Whoever deletes or saves can set `_audit_request` on the
instance (the admin does) so the entry names the actor, IP and user agent.
"""

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from .models import Membership
from .services import revoke_api_tokens


@receiver(post_delete, sender=Membership, dispatch_uid="membership_revokes_tokens")
def _membership_deleted(sender, instance: Membership, origin=None, **kwargs) -> None:
    # Only a deletion of memberships themselves: an organization or user being deleted takes
    # its tokens by cascade (and an audit row pointing at a deleted organization would fail).
    if not (isinstance(origin, Membership)
            or (isinstance(origin, QuerySet) and origin.model is Membership)):
        return
    request = getattr(instance, "_audit_request", None)
    revoke_api_tokens(user=instance.user, organization=instance.organization,
                      reason="membership_removed", request=request)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="user_deactivation_seen")
def _remember_was_active(sender, instance, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    instance._was_active = (
        sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    )


@receiver(post_save, sender=get_user_model(), dispatch_uid="user_deactivation_revokes_tokens")
def _user_saved(sender, instance, created=False, raw=False, **kwargs) -> None:
    if raw or created or instance.is_active or not getattr(instance, "_was_active", False):
        return
    instance._was_active = False
    revoke_api_tokens(user=instance, reason="user_deactivated",
                      request=getattr(instance, "_audit_request", None))
