"""The Django admin (outer ring): an operations console over the rooms' rows.

Raw rows are read-only; actions call the same room functions as the API and the commands.
Importing the package registers every ModelAdmin (Django's admin autodiscovery imports it).
"""

from . import (  # noqa: F401  (registers the ModelAdmins)
    connections,
    conversations,
    events,
    onboarding,
    privacy,
    sending,
)
