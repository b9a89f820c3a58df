"""The dashboard's work tiles: what support should act on, each figure with the link to the
admin list of exactly its rows (the list filters in whatsapp/admin/filters.py use the same
QuerySet methods, so a tile's number and its list cannot drift apart)."""

from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Min
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.models import Connection, Onboarding, OutboundMessage, PhoneNumber, WebhookLog


def link(name: str, **params) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def connection_tiles(*, now: datetime | None = None) -> list[dict]:
    """Tokens invalid or expiring, pipelines stalled or in error, failed syncs, orphans."""
    now = now or timezone.now()
    stall = settings.WHATSAPP_PIPELINE_STALL_SECONDS
    qs = Connection.objects
    rows = [
        ("token_invalid", _("Invalid tokens"), qs.token_invalid()),
        ("token_expiring_7", _("Tokens expiring within 7 days"),
         qs.token_expiring(days=7, now=now)),
        ("token_expiring_30", _("Tokens expiring within 30 days"),
         qs.token_expiring(days=30, now=now)),
        ("stalled", _("Stalled pipelines (connecting with no progress for %(min)d min)")
         % {"min": stall // 60}, qs.stalled(seconds=stall, now=now)),
        ("error", _("Pipelines in error"), qs.pipeline_errors()),
    ]
    tiles = [{"key": key, "label": label, "count": rows_qs.count(),
              "url": link("whatsapp_connection", attention=key)}
             for key, label, rows_qs in rows]
    tiles.append({"key": "sync_failed", "label": _("Failed syncs (contacts or history)"),
                  "count": PhoneNumber.objects.sync_failed().count(),
                  "url": link("whatsapp_phonenumber", sync="failed")})
    tiles.append({"key": "orphans", "label": _("Orphan WABAs awaiting a claim"),
                  "count": Connection.objects.orphans().count(),
                  "url": link("whatsapp_orphanconnection")})
    return tiles


def parked_by_number(*, now: datetime | None = None) -> list[dict]:
    """Deliveries parked until their number is configured: per number, count and oldest."""
    now = now or timezone.now()
    rows = (WebhookLog.objects.filter(status=WebhookLog.Status.PARKED)
            .values("parked_phone_number_id")
            .annotate(n=Count("pk"), oldest=Min("received_at")).order_by("oldest"))
    return [{"number": row["parked_phone_number_id"] or _("(not informed)"), "count": row["n"],
             "oldest": row["oldest"],
             "age_minutes": int((now - row["oldest"]).total_seconds() // 60),
             "url": link("whatsapp_webhooklog", status__exact=WebhookLog.Status.PARKED,
                         parked_phone_number_id=row["parked_phone_number_id"])}
            for row in rows]


def sends_summary(*, period, organization=None) -> dict:
    """Outbound sends of the period by status, and the failed ones by Meta's error code."""
    sends = OutboundMessage.objects.filter(created_at__gte=period.start,
                                           created_at__lt=period.end)
    base = {"period": period.days}
    if organization is not None:
        sends = sends.filter(organization=organization)
        base["organization__id__exact"] = organization.pk
    statuses = dict(OutboundMessage.Status.choices)
    by_status = [{"label": statuses.get(row["status"], row["status"]), "count": row["n"],
                  "url": link("whatsapp_outboundmessage", status__exact=row["status"], **base)}
                 for row in sends.values("status").annotate(n=Count("pk")).order_by("-n",
                                                                                     "status")]
    by_error = [{"label": _("Meta error %(code)s") % {"code": row["error_code"]}, "count": row["n"],
                 "url": link("whatsapp_outboundmessage", error_code=row["error_code"], **base)}
                for row in sends.filter(error_code__isnull=False).values("error_code")
                .annotate(n=Count("pk")).order_by("-n", "error_code")]
    return {"by_status": by_status, "by_error": by_error}


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def funnel_by_variant(*, period, organization=None) -> list[dict]:
    """The onboarding funnel per rollout variant (popup first, hosted link first): started,
    completed, success rate and time to complete (p50, p90; seed 000 §12 wants < 2 min)."""
    onboardings = Onboarding.objects.filter(created_at__gte=period.start,
                                            created_at__lt=period.end)
    base = {"period": period.days}
    if organization is not None:
        onboardings = onboardings.filter(organization=organization)
        base["organization__id__exact"] = organization.pk
    variants = dict(Onboarding.Variant.choices)
    present = set(onboardings.values_list("variant", flat=True).distinct())
    order = [*variants, *([""] if "" in present else [])]
    rows = []
    for variant in order:
        of_variant = onboardings.filter(variant=variant)
        started = of_variant.count()
        durations = [(done - created).total_seconds() for created, done in of_variant.filter(
            status=Onboarding.Status.COMPLETED, completed_at__isnull=False,
        ).values_list("created_at", "completed_at")]
        p50, p90 = percentile(durations, 0.5), percentile(durations, 0.9)
        rows.append({
            "variant": variant,
            "label": variants.get(variant, _("(not recorded)")),
            "started": started,
            "completed": len(durations),
            "success_rate": round(100 * len(durations) / started, 1) if started else None,
            "p50_seconds": round(p50) if p50 is not None else None,
            "p90_seconds": round(p90) if p90 is not None else None,
            "within_target": p90 is not None and p90 < 120,
            "url": link("whatsapp_onboarding", variant__exact=variant, **base),
            "completed_url": link("whatsapp_onboarding", variant__exact=variant,
                                  status__exact=Onboarding.Status.COMPLETED, **base),
        })
    return rows
