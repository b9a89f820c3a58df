"""What a tenant's conversations cost: the monthly usage report per number (issue 16 §4).

Built from the pricing Meta reports on our sends' statuses (`OutboundMessage.pricing_*`, one
row per message, so a message with several priced statuses counts once). Months are UTC
calendar months (Meta's billing periods); a message counts in the month of the first status
that carried its pricing.

Since 1 Oct 2026 the first `WHATSAPP_FREE_SERVICE_TIER` (1,000) *delivered* service messages of
a number in a month are free; after that Meta bills them (`pricing.type` `regular`,
META-PLATFORM §0). The tier is Meta's count, per number: a number shared with another partner
shares it, so Meta's own word (a service message priced `regular`) also marks it exceeded.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Count, Q

from whatsapp.models import OutboundMessage, PhoneNumber

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
SERVICE = "service"
BILLED = "regular"


def month_parse(text: str) -> tuple[datetime, datetime] | None:
    """`YYYY-MM` → [start, end) in UTC; None when it is not a month."""
    found = MONTH.match(text or "")
    if not found:
        return None
    year, month = int(found[1]), int(found[2])
    if year < 2000:
        return None
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


@dataclass
class NumberMonth:
    config_id: int
    organization_id: int | None
    phone_number_id: str
    display_phone_number: str
    messages: int = 0
    billable: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_pricing_type: dict[str, int] = field(default_factory=dict)
    by_category_and_type: dict[str, dict[str, int]] = field(default_factory=dict)
    service_delivered: int = 0
    service_billed: int = 0

    @property
    def free_tier_size(self) -> int:
        return settings.WHATSAPP_FREE_SERVICE_TIER

    @property
    def free_tier_used(self) -> int:
        return min(self.service_delivered, self.free_tier_size)

    @property
    def free_tier_exceeded(self) -> bool:
        return self.service_delivered > self.free_tier_size or self.service_billed > 0

    def as_json(self) -> dict:
        return {
            "phoneNumberId": self.phone_number_id,
            "displayPhoneNumber": self.display_phone_number,
            "messages": self.messages,
            "billable": self.billable,
            "byCategory": self.by_category,
            "byPricingType": self.by_pricing_type,
            "byCategoryAndPricingType": self.by_category_and_type,
            "freeServiceTier": {
                "size": self.free_tier_size,
                "deliveredServiceMessages": self.service_delivered,
                "used": self.free_tier_used,
                "remaining": max(0, self.free_tier_size - self.service_delivered),
                "exceeded": self.free_tier_exceeded,
            },
        }


def usage_report(*, start: datetime, end: datetime, organization_id: int | None = None,
                 config_ids: list[int] | None = None) -> list[NumberMonth]:
    """Per number, the messages priced in [start, end): one GROUP BY query."""
    priced = OutboundMessage.objects.filter(priced_at__gte=start, priced_at__lt=end)
    numbers = PhoneNumber.objects.all()
    if organization_id is not None:
        priced = priced.filter(organization_id=organization_id)
        numbers = numbers.filter(organization_id=organization_id)
    if config_ids is not None:
        priced = priced.filter(config_id__in=config_ids)
        numbers = numbers.filter(pk__in=config_ids)
    rows = (priced.values("config_id", "pricing_category", "pricing_type")
            .annotate(messages=Count("pk"), billable=Count("pk", filter=Q(pricing_billable=True)),
                      delivered=Count("pk", filter=Q(delivered_at__isnull=False)
                                      | Q(read_at__isnull=False)))
            .order_by())
    report: dict[int, NumberMonth] = {}
    wanted = {row["config_id"] for row in rows}
    for number in numbers.filter(pk__in=wanted).order_by("organization_id", "pk"):
        report[number.pk] = NumberMonth(number.pk, number.organization_id,
                                        number.phone_number_id, number.display_phone_number)
    for row in rows:
        usage = report.get(row["config_id"])
        if usage is None:
            continue
        category = row["pricing_category"] or "unknown"
        kind = row["pricing_type"] or "unknown"
        usage.messages += row["messages"]
        usage.billable += row["billable"]
        usage.by_category[category] = usage.by_category.get(category, 0) + row["messages"]
        usage.by_pricing_type[kind] = usage.by_pricing_type.get(kind, 0) + row["messages"]
        cell = usage.by_category_and_type.setdefault(category, {})
        cell[kind] = cell.get(kind, 0) + row["messages"]
        if category == SERVICE:
            usage.service_delivered += row["delivered"]
            if kind == BILLED:
                usage.service_billed += row["messages"]
    return list(report.values())


def numbers_over_free_tier(*, now: datetime) -> list[NumberMonth]:
    """This month's numbers that left their free service tier (the alert)."""
    start, end = month_parse(month_of(now))
    return [u for u in usage_report(start=start, end=end) if u.free_tier_exceeded]
