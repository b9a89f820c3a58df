from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WhatsappConfig(AppConfig):
    name = "whatsapp"
    verbose_name = _("WhatsApp")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .support import support_group_ensure

        # Sent once per app after migrate; idempotent, so the last one sees every permission.
        post_migrate.connect(support_group_ensure, dispatch_uid="whatsapp.support_group")
