"""The onboarding room: how a tenant's WABA gets connected and stays healthy.

Embedded Signup sessions and tracking codes (`signup`, `tracking`), which tenant a WABA
belongs to (`attribution`: only what Meta proves), a connection's lifecycle (`connections`),
the resumable setup pipeline (`pipeline`), token health, subscription checks and key
rotation, and the funnel's analytics events. Never imports sending or conversations.
"""
