"""What the tenant is told and when (issue 20), read from the environment like the rest of
`config.settings.base`, which imports this module: when a pending onboarding counts as stalled,
and the token-expiry notices (banner and e-mail to the organization's admins)."""

import environ

env = environ.Env()  # the .env file was read by base, into the process environment

# A pending onboarding with no signal (browser or Meta) for this long is reported as `stalled`:
# the page says Meta did not answer and offers to try again.
WHATSAPP_ONBOARDING_IDLE_SECONDS = env.int("WHATSAPP_ONBOARDING_IDLE_SECONDS", default=600)
# Days before a business token expires at which the admins are e-mailed (once per threshold);
# the largest also starts the "Reconecte seu WhatsApp até DD/MM" banner.
WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS = sorted(
    (int(d) for d in env.list("WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS", default=["30", "7"])),
    reverse=True)
# Sender of the e-mails to tenants (EMAIL_URL sets the backend; bin/demo prints them).
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Qualifica Leads <nao-responda@localhost>")
