"""Template sends beyond positional text (issue 16 §5): named parameters, media headers and
buttons, through the send API to the Graph payload, and the pt-BR 400s for what Meta would
refuse (nothing is queued then)."""

import pytest

from tests.sending.conftest import WABA
from tests.sending.test_sending import (
    LEAD,
    URL,
    queue,
    sends,
)
from whatsapp.models import MessageTemplate, OutboundMessage
from whatsapp.sending.worker import outbound_send

pytestmark = pytest.mark.django_db

NAMED = {"name": "visita_agendada", "language": "pt_BR"}
DOCUMENT = {"name": "ficha_imovel", "language": "pt_BR"}
GOOD_NAMED = {**NAMED, "namedParameters": {"nome": "Mariana", "imovel": "apto 42"},
              "header": {"type": "image", "id": "1234567890"},
              "buttons": [{"index": 1, "type": "quick_reply", "payload": "remarcar-42"}]}
GOOD_DOCUMENT = {**DOCUMENT, "parameters": ["Vila Mariana 42"],
                 "header": {"type": "document", "link": "https://cdn.example/ficha.pdf",
                            "filename": "ficha.pdf"},
                 "buttons": [{"index": 0, "type": "url", "text": "vila-mariana-42"}]}


@pytest.fixture
def templates(org, number):
    common = {"organization": org, "connection": number.connection, "waba_id": WABA,
              "status": "APPROVED", "category": "UTILITY", "language": "pt_BR"}
    MessageTemplate.objects.create(
        **common, name="visita_agendada", template_id="606000000000004", parameter_format="NAMED",
        body_parameter_count=2, components=[
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Olá {{nome}}, sua visita ao {{imovel}} está marcada."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirmar"},
                                            {"type": "QUICK_REPLY", "text": "Remarcar"}]}])
    MessageTemplate.objects.create(
        **common, name="ficha_imovel", template_id="606000000000005",
        parameter_format="POSITIONAL", body_parameter_count=1, components=[
            {"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Segue a ficha do imóvel {{1}}."},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Fotos", "url": "https://imoveis.example/f/{{1}}"}]}])


def send(api, template: dict):
    return api.post(URL, {"type": "template", "to": LEAD, "template": template}, format="json")


def test_named_parameters_image_header_and_quick_reply(api, templates, sending_on, graph):
    message = queue(api, {"type": "template", "to": LEAD, "template": GOOD_NAMED})
    assert outbound_send(message.pk).status == OutboundMessage.Status.ACCEPTED
    (sent,) = sends(graph)
    assert sent["template"] == {"name": "visita_agendada", "language": {"code": "pt_BR"},
                                "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "1234567890"}}]},
        {"type": "body", "parameters": [
            {"type": "text", "parameter_name": "nome", "text": "Mariana"},
            {"type": "text", "parameter_name": "imovel", "text": "apto 42"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "remarcar-42"}]}]}


def test_document_link_header_and_url_button_suffix(api, templates, sending_on, graph):
    message = queue(api, {"type": "template", "to": LEAD, "template": GOOD_DOCUMENT})
    assert outbound_send(message.pk).status == OutboundMessage.Status.ACCEPTED
    (sent,) = sends(graph)
    assert sent["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "document", "document": {
            "link": "https://cdn.example/ficha.pdf", "filename": "ficha.pdf"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Vila Mariana 42"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "vila-mariana-42"}]}]


def without(template: dict, key: str) -> dict:
    return {k: v for k, v in template.items() if k != key}


@pytest.mark.parametrize("template,says", [
    # Shapes the API itself refuses.
    ({**GOOD_NAMED, "header": {"type": "image"}}, "id ou o link da mídia"),
    ({**GOOD_NAMED, "header": {"type": "image", "id": "1", "link": "https://x.example/a.jpg"}},
     "um dos dois"),
    ({**GOOD_NAMED, "header": {"type": "image", "link": "http://x.example/a.jpg"}}, "https"),
    ({**GOOD_NAMED, "header": {"type": "image", "id": "1", "filename": "a.jpg"}},
     "nome de arquivo"),
    ({**GOOD_NAMED, "header": {"type": "audio", "id": "1"}}, "escolha válida"),
    ({**GOOD_NAMED, "buttons": [{"index": 0, "type": "quick_reply"}]}, "payload"),
    ({**GOOD_DOCUMENT, "buttons": [{"index": 0, "type": "url", "payload": "x"}]}, "text"),
    ({**GOOD_NAMED, "buttons": [{"index": 0, "type": "quick_reply", "payload": "a"},
                                {"index": 0, "type": "quick_reply", "payload": "b"}]},
     "só uma vez"),
    ({**GOOD_NAMED, "namedParameters": {"Nome Completo": "x"}}, "letras minúsculas"),
    ({**GOOD_NAMED, "parameters": ["x"]}, "não os dois"),
    # What Meta would refuse for these templates.
    ({**without(GOOD_NAMED, "namedParameters"), "parameters": ["Mariana", "apto 42"]},
     "usa parâmetros nomeados"),
    ({**without(GOOD_DOCUMENT, "parameters"), "namedParameters": {"imovel": "x"}},
     "usa parâmetros numerados"),
    ({**GOOD_NAMED, "namedParameters": {"nome": "Mariana"}}, "Faltam parâmetros do modelo: imovel"),
    ({**GOOD_NAMED, "namedParameters": {"nome": "M", "imovel": "a", "bairro": "b"}},
     "não tem parâmetros chamados bairro"),
    (without(GOOD_NAMED, "header"), "é uma imagem"),
    ({**GOOD_NAMED, "header": {"type": "video", "id": "1"}}, "é uma imagem, não um vídeo"),
    ({**GOOD_NAMED, "buttons": [{"index": 2, "type": "quick_reply", "payload": "x"}]},
     "não tem o botão 2"),
    ({**GOOD_NAMED, "buttons": [{"index": 0, "type": "url", "text": "x"}]}, "não é um botão url"),
    (without(GOOD_DOCUMENT, "buttons"), "precisa do final da URL"),
    ({"name": "confirmacao_visita", "language": "pt_BR", "header": {"type": "image", "id": "1"}},
     "não tem cabeçalho de mídia"),
])
def test_bad_template_sends_get_a_clear_400_and_queue_nothing(api, org, number, templates,
                                                              sending_on, template, says):
    MessageTemplate.objects.create(organization=org, connection=number.connection, waba_id=WABA,
                                   name="confirmacao_visita", language="pt_BR",
                                   status="APPROVED", components=[])
    response = send(api, template)
    assert response.status_code == 400, response.json()
    assert says in str(response.json()), response.json()
    assert not OutboundMessage.objects.exists()


def test_hello_world_without_a_synced_row_takes_no_media_or_buttons(api, number, sending_on,
                                                                    settings):
    settings.WHATSAPP_ALLOW_HELLO_WORLD = True
    response = send(api, {"name": "hello_world", "language": "en_US",
                          "header": {"type": "image", "id": "1"}})
    assert response.status_code == 400 and response.json()["code"] == "invalid_template"


def test_the_template_list_says_how_to_send_each(api, templates):
    listed = {t["name"]: t for t in api.get("/api/v1/whatsapp/templates").json()["templates"]}
    assert listed["visita_agendada"]["parameterFormat"] == "NAMED"
    assert listed["ficha_imovel"]["parameterFormat"] == "POSITIONAL"
    assert listed["ficha_imovel"]["categoryConfirmationRequired"] is False
