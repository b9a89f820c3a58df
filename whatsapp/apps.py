from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WhatsappConfig(AppConfig):
    name = "whatsapp"
    verbose_name = _("WhatsApp")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        # Registers every task by name in every process: rooms enqueue through
        # whatsapp.core.jobs, never by importing the tasks module.
        from . import tasks  # noqa: F401
        from .backoffice.support import support_group_ensure

        # Sent once per app after migrate; idempotent, so the last one sees every permission.
        post_migrate.connect(support_group_ensure, dispatch_uid="whatsapp.support_group")
