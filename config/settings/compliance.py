"""What conversations cost and data protection (issue 16 §4, §6), read from the environment
like the rest of `config.settings.base` (which imports this module last)."""

import environ

env = environ.Env()  # the .env file was read by base, into the process environment

# Delivered service messages per number and month that Meta does not bill (since 1 Oct 2026;
# META-PLATFORM §0 "Pricing"). The usage report and the free-tier alert measure against it.
WHATSAPP_FREE_SERVICE_TIER = env.int("WHATSAPP_FREE_SERVICE_TIER", default=1000)
# How long an erasure attempt holds its request; a worker killed mid-way leaves it `running`,
# and the sweep (beat) takes it again once this ran out.
WHATSAPP_ERASURE_LEASE_SECONDS = env.int("WHATSAPP_ERASURE_LEASE_SECONDS", default=300)
# Where a person writes about their data (shown on the public privacy policy, /privacidade);
# empty = the page only points leads to their agency and Facebook users to Meta's flow.
PRIVACY_CONTACT_EMAIL = env("PRIVACY_CONTACT_EMAIL", default="")
