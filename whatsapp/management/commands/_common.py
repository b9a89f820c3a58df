"""Helpers shared by the ops commands (leading underscore: not a command itself)."""

import json
from datetime import datetime

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from organizations.models import Organization
from organizations.services import organization_by_id_or_slug


def find_organization(value: str) -> Organization:
    organization = organization_by_id_or_slug(value)
    if organization is None:
        raise CommandError(f"No organization with id or slug {value!r}.")
    return organization


def parse_since(value: str) -> datetime:
    """ISO date or datetime, or a relative `30m`, `6h`, `2d`."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return timezone.now() - timezone.timedelta(seconds=int(value[:-1]) * units[value[-1]])
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = datetime(day.year, day.month, day.day)
    if parsed is None:
        raise CommandError(
            f"--since {value!r} is not a date (2026-11-20), datetime (2026-11-20T10:00) or "
            "duration (30m, 6h, 2d).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def dump(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)
