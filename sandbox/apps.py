import logging

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """A stand-in for Meta (Graph API, Embedded Signup, webhooks), only with META_SANDBOX."""

    name = "sandbox"
    verbose_name = "Meta sandbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Graph calls carry client_secret, code and input_token in the query string (as Meta's
        # do); with the sandbox on the same runserver they would land in its access log.
        from config.logging import ScrubSecretsFilter

        logging.getLogger("django.server").addFilter(ScrubSecretsFilter())
