"""Figures for support's back-office: the onboarding funnel and the failed-webhooks dashboard."""

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from organizations.models import Organization
from organizations.services import organization_by_id
from whatsapp.models import Connection, Onboarding, WebhookLog

from . import labels, work

PERIODS = {"7": 7, "30": 30, "90": 90}


@dataclass
class Period:
    days: int
    start: datetime
    end: datetime

    @classmethod
    def from_request(cls, value: str | None, *, now: datetime | None = None) -> "Period":
        days = PERIODS.get(value or "", 30)
        end = now or timezone.now()
        return cls(days=days, start=end - timedelta(days=days), end=end)

    def dates(self) -> list[date]:
        first = timezone.localtime(self.start).date()
        return [first + timedelta(days=i) for i in range(self.days + 1)]


def funnel(*, period: Period, organization=None) -> dict:
    """Started → completed, success rate, mean time to complete, cancellations and errors."""
    onboardings = Onboarding.objects.filter(created_at__gte=period.start,
                                            created_at__lt=period.end)
    if organization is not None:
        onboardings = onboardings.filter(organization=organization)
    S = Onboarding.Status
    counts = onboardings.aggregate(
        started=Count("pk"),
        completed=Count("pk", filter=Q(status=S.COMPLETED)),
        cancelled=Count("pk", filter=Q(status=S.CANCELLED)),
        failed=Count("pk", filter=Q(status=S.FAILED)),
        expired=Count("pk", filter=Q(status=S.EXPIRED)
                      | Q(status=S.PENDING, expires_at__lte=period.end)),
        mean=Avg(ExpressionWrapper(F("completed_at") - F("created_at"),
                                   output_field=DurationField()),
                 filter=Q(status=S.COMPLETED, completed_at__isnull=False)),
    )
    started, mean = counts["started"], counts.pop("mean")
    return {
        **counts,
        "success_rate": round(100 * counts["completed"] / started, 1) if started else None,
        "mean_seconds_to_complete": round(mean.total_seconds()) if mean else None,
        "cancellations_by_step": _grouped(onboardings.filter(status=S.CANCELLED),
                                          "current_step"),
        "errors_by_code": _grouped(onboardings.filter(status=S.FAILED), "error_code"),
    }


def _grouped(queryset, field: str) -> list[tuple[str, int]]:
    rows = queryset.values(field).annotate(n=Count("pk")).order_by("-n", field)
    return [(row[field] or _("(not informed)"), row["n"]) for row in rows]


def active_connections_by_day(*, period: Period, organization=None) -> list[tuple[date, int]]:
    """Connections live at the end of each day of the period."""
    connections = Connection.objects.filter(organization__isnull=False,
                                            connected_at__isnull=False)
    if organization is not None:
        connections = connections.filter(organization=organization)
    spans = list(connections.values_list("connected_at", "disconnected_at"))
    series = []
    for day in period.dates():
        end = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
        live = sum(1 for start, stop in spans if start < end and (stop is None or stop >= end))
        series.append((day, live))
    return series


def failed_webhooks(*, organization=None) -> dict:
    """Failed and dead deliveries: counts by error, field and organization; the oldest's age."""
    logs = WebhookLog.objects.filter(status__in=[WebhookLog.Status.FAILED,
                                                 WebhookLog.Status.DEAD])
    if organization is not None:
        logs = logs.filter(organization=organization)
    counts = logs.aggregate(oldest=Min("received_at"),
                            failed=Count("pk", filter=Q(status=WebhookLog.Status.FAILED)),
                            dead=Count("pk", filter=Q(status=WebhookLog.Status.DEAD)))
    oldest = counts["oldest"]
    by_field: dict[str, int] = {}
    for fields, n in logs.values_list("fields").annotate(n=Count("pk")):
        for name in fields or [_("(not parsed)")]:
            by_field[name] = by_field.get(name, 0) + n
    by_error: dict[str, int] = {}
    for error, n in logs.values_list("last_error").annotate(n=Count("pk")):
        # Group by the exception and its first line: ids and numbers make every message unique.
        key = (error or "").split("\n", 1)[0][:120] or _("(no error recorded)")
        by_error[key] = by_error.get(key, 0) + n
    by_org = [
        (row["organization__name"] or _("(unknown organization)"), row["n"])
        for row in logs.values("organization__name").annotate(n=Count("pk")).order_by("-n")
    ]
    return {
        "failed": counts["failed"],
        "dead": counts["dead"],
        "oldest_received_at": oldest,
        "oldest_age_hours": round((timezone.now() - oldest).total_seconds() / 3600, 1)
        if oldest else None,
        "by_error": sorted(by_error.items(), key=lambda kv: (-kv[1], kv[0])),
        "by_field": sorted(by_field.items(), key=lambda kv: (-kv[1], kv[0])),
        "by_organization": by_org,
    }


def dashboard_context(*, period: Period, organization=None) -> dict:
    """Everything the admin index shows, with chart data in unfold's Chart.js format."""
    numbers = funnel(period=period, organization=organization)
    series = active_connections_by_day(period=period, organization=organization)
    orphans = Connection.objects.orphans().count()
    dead = WebhookLog.objects.filter(status=WebhookLog.Status.DEAD)
    if organization is not None:
        dead = dead.filter(organization=organization)
    return {
        "funnel": numbers,
        "work_tiles": work.connection_tiles(),
        "parked_by_number": work.parked_by_number(),
        "sends": work.sends_summary(period=period, organization=organization),
        "funnel_by_variant": work.funnel_by_variant(period=period, organization=organization),
        "orphans": orphans,
        "dead_letters": dead.count(),
        "backlog": WebhookLog.objects.backlog().count(),
        "parked": WebhookLog.objects.filter(status=WebhookLog.Status.PARKED).count(),
        "funnel_chart": json.dumps({
            "labels": [_("Started"), _("Completed"), _("Cancelled"), _("Failed"),
                       _("Expired")],
            "datasets": [{"label": _("Onboardings"), "data": [
                numbers["started"], numbers["completed"], numbers["cancelled"],
                numbers["failed"], numbers["expired"]]}],
        }),
        "active_chart": json.dumps({
            "labels": [d.strftime("%d/%m") for d, _n in series],
            "datasets": [{"label": _("Active connections"), "data": [n for _d, n in series]}],
        }),
        "cancel_table": {"headers": [_("Step"), _("Cancellations")],
                         "rows": [(labels.label(labels.SIGNUP_STEP, step), n)
                                  for step, n in numbers["cancellations_by_step"]]},
        "error_table": {"headers": [_("Error code"), _("Failures")],
                        "rows": numbers["errors_by_code"]},
    }


def dashboard_callback(request, context: dict) -> dict:
    """unfold's DASHBOARD_CALLBACK: the admin index becomes the onboarding dashboard."""
    period = Period.from_request(request.GET.get("period"))
    organization = organization_by_id(request.GET.get("org", ""))
    context.update(dashboard_context(period=period, organization=organization))
    context["title"] = _("Onboarding dashboard")
    context.update(
        period_days=period.days,
        periods=list(PERIODS),
        selected_org=organization,
        organizations=Organization.objects.order_by("name").only("pk", "name"),
    )
    return context
