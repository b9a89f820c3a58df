"""The support staff's group: reads everything, claims orphans, replays, operates connections;
never edits raw data or the audit log, and never sees a token (no screen shows one)."""

from django.contrib.auth.models import Group, Permission

SUPPORT_GROUP = "Suporte"
SUPPORT_APPS = ["organizations", "audit", "whatsapp", "ops", "django_celery_beat"]
SUPPORT_ACTIONS = ["whatsapp.claim_orphan", "whatsapp.operate_connection",
                   "whatsapp.operate_onboarding", "whatsapp.replay_webhooklog",
                   "whatsapp.erase_contact", "whatsapp.replay_leadevent",
                   "whatsapp.confirm_template_category"]


def support_group_ensure(**kwargs) -> Group:
    """Idempotent; runs after every migrate so new models' view permissions are included."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    views = Permission.objects.filter(content_type__app_label__in=SUPPORT_APPS,
                                      codename__startswith="view_")
    actions = [
        Permission.objects.filter(content_type__app_label=label, codename=codename).first()
        for label, codename in (p.split(".") for p in SUPPORT_ACTIONS)
    ]
    group.permissions.add(*views, *[p for p in actions if p is not None])
    return group
