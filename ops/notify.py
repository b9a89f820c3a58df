"""Where an alert's change goes: the log and Sentry always, and when configured, e-mail to
`ADMINS` (Django's mail_admins) and a Slack-compatible incoming webhook
(`ALERTS_SLACK_WEBHOOK_URL`, JSON `{"text": …}`). Texts for people in pt-BR; a channel that
fails is logged and never fails the evaluation."""

import logging

import requests
import sentry_sdk
from django.conf import settings
from django.core.mail import mail_admins
from django.utils import translation
from django.utils.translation import gettext as _

logger = logging.getLogger("ops.alerts")


def notify(key: str, active: bool, message: str) -> None:
    text = f"ALERT {key}: {message}" if active else f"RESOLVED {key}"
    (logger.error if active else logger.info)(text)
    try:
        sentry_sdk.capture_message(text, level="error" if active else "info")
    except Exception:  # Sentry is optional; the log line above is the record
        pass
    with translation.override(settings.LANGUAGE_CODE):
        if active:
            headline = _("Alert: %(message)s") % {"message": message}
        else:
            headline = _("Resolved: %(message)s") % {"message": message}
        detail = _("Alert key: %(key)s") % {"key": key}
    _email(headline, detail)
    _slack(f"{headline} ({key})")


def _email(subject: str, detail: str) -> None:
    if not settings.ADMINS:
        return
    try:
        # Subjects are one line; mail_admins adds EMAIL_SUBJECT_PREFIX.
        mail_admins(subject.replace("\n", " ")[:180], f"{subject}\n\n{detail}\n")
    except Exception:
        logger.warning("Alert e-mail to ADMINS failed", exc_info=True)


def _slack(text: str) -> None:
    url = settings.ALERTS_SLACK_WEBHOOK_URL
    if not url:
        return
    try:
        response = requests.post(url, json={"text": text},
                                 timeout=settings.ALERTS_SLACK_TIMEOUT_SECONDS)
        if response.status_code >= 400:
            logger.warning("Alert webhook answered %s", response.status_code)
    except requests.RequestException as exc:
        logger.warning("Alert webhook unreachable: %s", type(exc).__name__)
