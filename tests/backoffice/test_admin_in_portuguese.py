"""Issue 18 §1: every back-office screen reads in pt-BR.

Logs in as *suporte* and as a superuser, opens every admin URL the sidebar and the dashboard
link to (lists with one object of each model, a detail of each, the empty lists, the login) and
fails on a 500, on an English UI word from `ENGLISH`, or on a raw code of the product's choices
shown as visible text.
"""

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection as db
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from audit.models import AuditLog
from ops.models import AlertState, Heartbeat
from ops.schedules import SCHEDULES
from organizations.models import ApiToken
from tests.factories import (
    ConnectionFactory,
    ContactFactory,
    ContactIdentityFactory,
    MembershipFactory,
    OnboardingFactory,
    PhoneNumberFactory,
    UserFactory,
)
from whatsapp.backoffice import labels
from whatsapp.backoffice.support import SUPPORT_GROUP
from whatsapp.models import (
    AnalyticsEvent,
    Connection,
    FeatureFlag,
    FeatureFlagOverride,
    HistoryChunk,
    HistorySync,
    Message,
    MessageMedia,
    MessageStatus,
    MessageTemplate,
    Onboarding,
    OutboundEvent,
    OutboundMessage,
    SendPolicy,
    TemplateStatusEvent,
    TokenExpiryNotice,
    WebhookLog,
)

pytestmark = pytest.mark.django_db

# English left on screen by unfold, django-celery-beat or our own labels. Whole words or
# phrases, matched case-sensitively on visible text only.
ENGLISH = [
    "Type to search", "No results found", "This page yielded", "Reset filters",
    "Welcome back", "Return to site", "Periodic Tasks", "Periodic tasks", "Clocked", "clocked",
    "Intervals", "Crontabs", "Solar events", "every", "Start Datetime", "Last Run Datetime",
    "Expires Datetime", "Total Run Count", "One-off Task", "Last Modified", "Description",
    "Organization", "log de auditoria", "Select all rows", "Select record", "Apply Filters",
    "More actions", "Run", "Go back", "All applications", "Search apps", "Recent searches",
    "No recent searches", "No data", "Light", "Dark", "True", "False", "Previous", "Next",
    "total", "Toggle password", "Expand row", "Date from", "Date to", "Select value",
    "Select action", "Search", "Filter", "Filters", "Add", "Save", "Delete", "History",
    "Change", "View", "Home", "Dashboard", "Log out", "Actions", "Action", "results",
    "Username", "Password", "Name", "Task", "Schedule", "Arguments", "Enabled", "Priority",
    "Queue", "Routing Key", "Sunrise", "Sunset", "Task Name",
    "seconds", "minutes", "hours", "days", "Direction", "Source", "Type",
    "Timestamp", "Body sha256", "orphan", "processed", "Kind", "Value", "Phase",
    "Progress", "Properties", "Forwarded", "Recipient", "Contact", "Headers", "Traceback",
    "Signature", "Fields", "Attempts", "Config", "Event", "Reason", "Category", "Language",
]

# Codes that are also words of our pt-BR text ("token", "template", "Navegador (user agent)",
# "Webhooks com falha").
NOT_CODES = {"admin", "error", "token", "waba", "template", "user", "webhook"}

# Months as pt-BR writes them, never capitalised inside a date.
CAPITALISED_MONTHS = re.compile(
    r"\d{1,2} de (Janeiro|Fevereiro|Março|Abril|Maio|Junho|Julho|Agosto|Setembro|Outubro|"
    r"Novembro|Dezembro)")


class VisibleText(HTMLParser):
    """What a reader sees: text nodes and the labels of inputs (placeholder, title,
    aria-label), without scripts, styles and raw data blocks (<pre>: Meta's payloads)."""

    HIDDEN = {"script", "style", "pre", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.text: list[str] = []
        self.labels: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag in self.HIDDEN:
            self.hidden += 1
        for name in ("placeholder", "title", "aria-label", "alt"):
            if attrs.get(name):
                self.labels.append(attrs[name])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag) -> None:
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data) -> None:
        if not self.hidden and data.strip():
            self.text.append(" ".join(data.split()))


def visible(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    return parser


def product_codes() -> set[str]:
    """Every choice value of our apps' models, and the Meta codes we keep labels for."""
    codes = set()
    for label in ("organizations", "audit", "whatsapp", "ops"):
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.get_fields():
                for value, _label in getattr(field, "flatchoices", None) or []:
                    codes.add(str(value))
    for mapping in labels.ALL:
        codes.update(mapping)
    return {c for c in codes if c and c.lower() not in NOT_CODES}


def problems_in(url: str, html: str, codes: set[str]) -> list[str]:
    page = visible(html)
    # Beat schedule names are identifiers (beat logs "Sending due task beat heartbeat"; ops and
    # tests refer to them): data, not UI.
    text = " | ".join(page.text)
    for name in SCHEDULES:
        text = text.replace(name, "")
    everything = text + " | " + " | ".join(page.labels)
    found = []
    for word in ENGLISH:
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", everything):
            found.append(f"{url}: English {word!r}")
    for code in codes:
        if re.search(rf"(?<![\w./-]){re.escape(code)}(?![\w/-])", text):
            found.append(f"{url}: raw code {code!r}")
    if CAPITALISED_MONTHS.search(text):
        found.append(f"{url}: capitalised month {CAPITALISED_MONTHS.search(text).group(0)!r}")
    return found


def one_of_each() -> None:
    """One row of every model the back-office lists, with codes a reader must not see."""
    now = timezone.now()
    membership = MembershipFactory(organization__name="Imobiliária Sol")
    org = membership.organization
    onboarding = OnboardingFactory(organization=org, status=Onboarding.Status.CANCELLED,
                                   current_step="PHONE_NUMBER_SETUP",
                                   finish_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING")
    OnboardingFactory(organization=org, status=Onboarding.Status.FAILED, error_code="2655093")
    connection = ConnectionFactory(
        organization=org, onboarding=onboarding, status=Connection.Status.DISCONNECTED,
        attributed_by="browser_callback", token_source="code_exchange", pipeline_step="done",
        finish_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", disconnect_reason="user_request",
        disconnected_at=now)
    ConnectionFactory(organization=None, status=Connection.Status.AWAITING_PHONE_SELECTION,
                      pipeline_step="awaiting_phone_selection", attributed_by="")
    number = PhoneNumberFactory(connection=connection, quality_rating="GREEN",
                                messaging_limit="TIER_1K", quality_event="UPGRADE")
    contact = ContactFactory(organization=org)
    ContactIdentityFactory(contact=contact)
    Message.objects.create(organization=org, contact=contact, config=number,
                           wamid="wamid.in1", direction=Message.Direction.INBOUND,
                           source=Message.Source.CLOUD_API, type="text", timestamp=now)
    photo = Message.objects.create(organization=org, contact=contact, config=number,
                                   wamid="wamid.in2", direction=Message.Direction.INBOUND,
                                   type="image", timestamp=now, media_id="505000000000001")
    MessageMedia.objects.create(organization=org, message=photo, media_id=photo.media_id,
                                status=MessageMedia.Status.STORED, file="1/2026/12/a.jpg",
                                mime_type="image/jpeg", size=48213, stored_at=now)
    TokenExpiryNotice.objects.create(connection=connection, threshold_days=7,
                                     token_expires_at=now + timedelta(days=6), recipients=2)
    MessageStatus.objects.create(organization=org, wamid="wamid.out1", status="delivered",
                                 timestamp=now, recipient_id="5511999990000")
    HistorySync.objects.create(config=number, status=HistorySync.Status.IN_PROGRESS)
    HistoryChunk.objects.create(config=number, phone_number_id=number.phone_number_id, phase=0,
                                chunk_order=1, progress=50, message_count=3)
    template = MessageTemplate.objects.create(
        organization=org, connection=connection, waba_id=connection.waba_id,
        template_id="9001", name="confirmacao_visita", language="pt_BR", status="APPROVED",
        category="UTILITY")
    TemplateStatusEvent.objects.create(organization=org, waba_id=connection.waba_id,
                                       template_id="9001", template_name=template.name,
                                       language="pt_BR", event="APPROVED", category="UTILITY")
    SendPolicy.objects.create(organization=org)
    outbound = OutboundMessage.objects.create(
        organization=org, config=number, contact=contact, to="5511999990000",
        kind=OutboundMessage.Kind.TEMPLATE, template=template, template_name=template.name,
        status=OutboundMessage.Status.DRY_RUN, actor=OutboundMessage.Actor.SYSTEM,
        idempotency_key="k1")
    OutboundEvent.objects.create(message=outbound, event="dry_run")
    WebhookLog.objects.create(raw_body=b'{"object": "whatsapp_business_account"}',
                              body_sha256="0" * 64, status=WebhookLog.Status.PROCESSED,
                              fields=["messages"], organization=org, processed_at=now)
    WebhookLog.objects.create(raw_body=b"{}", body_sha256="1" * 64,
                              status=WebhookLog.Status.DEAD, last_error="KeyError: 'x'")
    flag = FeatureFlag.objects.create(name="whatsapp_embedded_signup_enabled")
    FeatureFlagOverride.objects.create(flag=flag, organization=org, enabled=True)
    AnalyticsEvent.objects.create(organization=org, name=AnalyticsEvent.Name.SIGNUP_STARTED,
                                  dedupe_key="d1", properties={})
    AuditLog.objects.create(organization=org, actor_label="meta-webhook",
                            action=AuditLog.Action.WHATSAPP_CONNECTED,
                            target=f"waba:{connection.waba_id}")
    AlertState.objects.create(key="orphan_waba", active=True, message="1 WABA órfã")
    Heartbeat.beat("beat")
    ApiToken.issue(user=membership.user, organization=org, name="CRM")
    interval = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    CrontabSchedule.objects.create(minute="0", hour="3")
    SolarSchedule.objects.create(event="sunrise", latitude=-23.5, longitude=-46.6)
    ClockedSchedule.objects.create(clocked_time=now + timedelta(days=1))
    PeriodicTask.objects.create(name="ops.beat_heartbeat", task="ops.tasks.beat_heartbeat",
                                interval=interval)


def staff_client(client, kind: str):
    if kind == "superuser":
        user = UserFactory(is_staff=True, is_superuser=True)
    else:
        user = UserFactory(is_staff=True)
        user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    return client


def admin_links(html: str) -> set[str]:
    """The admin screens a page links to (query strings of sorting and filters dropped)."""
    links = set()
    for href in visible(html).links:
        path = urlsplit(href).path
        if path.startswith("/admin/") and "logout" not in path and not path.endswith("/add/"):
            links.add(path)
    return links


def detail_urls(client) -> set[str]:
    """A detail (change or view page) of the first row of every model the user can view."""
    request = client.get("/admin/").wsgi_request
    urls = set()
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_view_permission(request):
            continue
        first = model_admin.get_queryset(request).first()
        if first is not None:
            opts = model._meta
            urls.add(f"/admin/{opts.app_label}/{opts.model_name}/{first.pk}/change/")
    return urls


def crawl(client, urls: set[str], codes: set[str]) -> list[str]:
    problems = []
    for url in sorted(urls):
        response = client.get(url)
        if response.status_code >= 500:
            problems.append(f"{url}: {response.status_code}")
            continue
        if response.status_code == 200 and "text/html" in response["Content-Type"]:
            problems += problems_in(url, response.content.decode(), codes)
    return problems


@pytest.mark.parametrize("kind", ["suporte", "superuser"])
def test_every_admin_screen_with_data_reads_in_portuguese(client, kind):
    one_of_each()
    client = staff_client(client, kind)
    codes = product_codes()
    home = client.get("/admin/")
    assert home.status_code == 200
    linked = admin_links(home.content.decode())
    assert "/admin/whatsapp/orphanconnection/" in linked  # the dashboard's links
    assert "/admin/whatsapp/webhooklog/dashboard/" in linked
    urls = {"/admin/", *linked, *detail_urls(client)}
    assert len(urls) > 30
    problems = crawl(client, urls, codes)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", ["suporte", "superuser"])
def test_every_empty_admin_list_reads_in_portuguese(client, kind):
    client = staff_client(client, kind)
    linked = admin_links(client.get("/admin/").content.decode())
    lists = {u for u in linked if u.count("/") == 4}  # /admin/<app>/<model>/
    assert len(lists) > 15
    problems = crawl(client, {"/admin/", *linked}, product_codes())
    assert not problems, "\n".join(problems)


def test_the_login_page_reads_in_portuguese_and_asks_for_the_email(client):
    response = client.get("/admin/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert problems_in("/admin/login/", html, set()) == []
    assert "Nome de usuário" not in html
    assert "E-mail" in visible(html).text


def test_audit_entries_and_fields_show_the_same_clock(client):
    """The connection page shows its audit trail in São Paulo time, like its fields."""
    client = staff_client(client, "suporte")
    at = datetime(2026, 12, 2, 17, 2, tzinfo=UTC)  # 14:02 in São Paulo
    connection = ConnectionFactory(connected_at=at)
    entry = AuditLog.objects.create(action=AuditLog.Action.WHATSAPP_CONNECTED,
                                    target=f"waba:{connection.waba_id}")
    with db.cursor() as cursor:  # the log is append-only for the ORM
        cursor.execute("UPDATE audit_logs SET created_at = %s WHERE id = %s", [at, entry.pk])
    text = " | ".join(visible(client.get(
        f"/admin/whatsapp/connection/{connection.pk}/change/").content.decode()).text)
    assert "2 de dezembro de 2026 às 14:02" in text
    assert "17:02" not in text
