"""Issue 18 §5: alerts reach people (e-mail to ADMINS, a Slack-compatible webhook) once per
change, one per orphan / stalled pipeline / failed sync, plus parked backlog age, forged
signatures and rate-limit activations. Slack is a real HTTP receiver on 127.0.0.1; e-mail is
Django's locmem backend (mail.outbox)."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from ops.alerts import alerts_evaluate
from ops.models import AlertState
from tests.factories import ConnectionFactory, PhoneNumberFactory
from tests.ingest_support import stored
from tests.meta import WEBHOOK_URL
from whatsapp.models import Connection, PhoneNumber, WebhookLog

pytestmark = pytest.mark.django_db


class Receiver:
    """A stand-in for Slack's incoming webhook: records each POSTed JSON body."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status, self.delay = 200, 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(json.loads(body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/xyz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self, needle: str = "") -> list[str]:
        return [p["text"] for p in self.posts if needle in p["text"]]


@pytest.fixture
def slack(settings):
    receiver = Receiver()
    settings.ALERTS_SLACK_WEBHOOK_URL = receiver.url
    settings.ADMINS = [("Plantão", "plantao@qualifica.test")]
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def subjects(needle: str = "") -> list[str]:
    return [m.subject for m in mail.outbox if needle in m.subject]


def orphan(waba: str) -> Connection:
    return ConnectionFactory(organization=None, waba_id=waba, status=Connection.Status.ERROR,
                             error_message="orphan: no organization could be matched")


def test_two_orphans_two_announcements_then_one_resolved(slack):
    first = orphan("109900000000001")
    alerts_evaluate()
    orphan("109900000000002")  # a second orphan while the first alert is open
    alerts_evaluate()
    alerts_evaluate()  # nothing changed: nobody hears again

    assert len(slack.texts("WABA 109900000000001")) == 1
    assert len(slack.texts("WABA 109900000000002")) == 1
    assert slack.texts("109900000000002") == [
        "Alerta: WABA 109900000000002 sem organização: atribua-a a uma organização no "
        "back-office (WABAs órfãs) (orphan_waba:109900000000002)"]
    assert len(subjects("WABA 109900000000001")) == 1
    assert len(subjects("WABA 109900000000002")) == 1
    # (Other alerts may go out too: "no connection completed in 24 h" in business hours.)
    email = next(m for m in mail.outbox if "WABA 109900000000001" in m.subject)
    assert email.to == ["plantao@qualifica.test"]
    assert email.subject.startswith("[Qualifica Leads] Alerta: WABA 109900000000001")

    first.organization = ConnectionFactory().organization  # support claimed it
    first.save()
    alerts_evaluate()
    resolved = slack.texts("Resolvido")
    assert resolved == ["Resolvido: WABA 109900000000001 sem organização: atribua-a a uma "
                        "organização no back-office (WABAs órfãs) (orphan_waba:109900000000001)"]
    assert len(subjects("Resolvido")) == 1
    assert AlertState.objects.get(key="orphan_waba:109900000000002").active


def test_legacy_single_orphan_key_is_resolved(slack):
    AlertState.objects.create(key="orphan_waba", active=True, changed_at=timezone.now(),
                              message="1 WABA(s) without an organization")
    alerts_evaluate()
    assert not AlertState.objects.get(key="orphan_waba").active


def test_awaiting_browser_is_not_announced_until_the_grace_period(slack, settings):
    ConnectionFactory(organization=None, waba_id="109900000000003",
                      status=Connection.Status.ERROR, error_message="awaiting_browser: no_match")
    alerts_evaluate()
    assert slack.texts("109900000000003") == []
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_ORPHAN_GRACE_SECONDS + 1)
    alerts_evaluate(now=later)
    assert len(slack.texts("Alerta: WABA 109900000000003")) == 1


def test_stalled_pipeline_failed_sync_and_parked_backlog(slack, settings):
    stalled = ConnectionFactory(status=Connection.Status.CONNECTING, pipeline_step="subscribe")
    moving = ConnectionFactory(status=Connection.Status.CONNECTING)
    Connection.objects.filter(pk=stalled.pk).update(
        updated_at=timezone.now() - timedelta(minutes=settings.ALERTS_PIPELINE_STALLED_MINUTES + 1))
    number = PhoneNumberFactory(history_sync_status=PhoneNumber.SyncStatus.FAILED,
                                display_phone_number="5511940009999")
    log = stored()
    WebhookLog.objects.filter(pk=log.pk).update(
        status=WebhookLog.Status.PARKED, parked_phone_number_id="304000000099999",
        received_at=timezone.now() - timedelta(minutes=settings.ALERTS_PARKED_MAX_AGE_MINUTES + 5))

    active = {a["key"] for a in alerts_evaluate()}

    assert {f"pipeline_stalled:{stalled.waba_id}", f"sync_failed:{number.phone_number_id}",
            "parked_backlog_age"} <= active
    assert f"pipeline_stalled:{moving.waba_id}" not in active
    assert len(slack.texts(f"Alerta: A conexão da WABA {stalled.waba_id}")) == 1
    assert "(etapa: subscribe)" in slack.texts(stalled.waba_id)[0]
    assert len(slack.texts("sincronização da coexistência falhou no número 5511940009999")) == 1
    assert len(slack.texts("estacionada mais antiga")) == 1
    assert len(subjects("estacionada mais antiga")) == 1

    WebhookLog.objects.filter(pk=log.pk).update(status=WebhookLog.Status.PROCESSED)
    number.history_sync_status = PhoneNumber.SyncStatus.REQUESTED
    number.save()
    alerts_evaluate()
    assert len(slack.texts("Resolvido: A entrega de webhook estacionada")) == 1
    assert len(slack.texts("Resolvido: A sincronização")) == 1


def test_forged_signatures_and_rate_limit_activation_through_the_webhook(client, slack,
                                                                          settings):
    settings.RATELIMIT_WEBHOOK_INVALID_PER_MINUTE = 2
    settings.ALERTS_INVALID_SIGNATURES_PER_DAY = 3
    codes = [client.post(WEBHOOK_URL, data=b'{"object":"x"}', content_type="application/json",
                         HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64).status_code
             for _ in range(4)]
    assert codes == [403, 403, 429, 429]

    active = {a["key"] for a in alerts_evaluate()}

    assert {"forged_signatures", "rate_limit_activations"} <= active
    assert slack.texts("assinatura inválida") == [
        "Alerta: 4 requisições de webhook com assinatura inválida hoje (forged_signatures)"]
    # One activation: the IP's first refusal in its window, not every refused request.
    assert slack.texts("Limites de requisições") == [
        "Alerta: Limites de requisições foram ativados 1 vezes nos últimos 15 minutos "
        "(rate_limit_activations)"]


def test_slack_failures_never_fail_the_evaluation(slack, settings):
    slack.status = 500
    orphan("109900000000004")
    alerts_evaluate()
    assert len(slack.texts("109900000000004")) == 1
    assert len(subjects("109900000000004")) == 1  # e-mail still went out

    slack.delay, slack.status = 2.0, 200
    settings.ALERTS_SLACK_TIMEOUT_SECONDS = 0.3
    orphan("109900000000005")
    started = time.monotonic()
    alerts_evaluate()
    assert time.monotonic() - started < 1.5  # a slow receiver costs the timeout, no more
    assert AlertState.objects.get(key="orphan_waba:109900000000005").active

    settings.ALERTS_SLACK_WEBHOOK_URL = "http://127.0.0.1:9/nobody-listens"
    orphan("109900000000006")
    alerts_evaluate()
    assert AlertState.objects.get(key="orphan_waba:109900000000006").active


def test_nothing_is_sent_when_not_configured(settings):
    settings.ALERTS_SLACK_WEBHOOK_URL, settings.ADMINS = "", []
    orphan("109900000000007")
    alerts_evaluate()
    assert AlertState.objects.get(key="orphan_waba:109900000000007").active
    assert mail.outbox == []
