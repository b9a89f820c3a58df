"""Issue 16 §3 in a real browser: the connected card of Configurações › Conexão WhatsApp shows
each number's messaging limit (the portfolio's) in Portuguese."""

import pytest

from ..factories import PhoneNumberFactory
from .conftest import shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_connected_card_shows_the_messaging_limit(admin_page):
    page = admin_page
    PhoneNumberFactory(connection__organization=page.organization,
                       display_phone_number="5511940001234", verified_name="Imobiliária Sol",
                       messaging_limit="TIER_2K")
    page.reload()
    card = page.locator("#wa-connected-numbers li").first
    card.wait_for()
    assert card.inner_text().splitlines() == ["+55 11 94000-1234 · Imobiliária Sol",
                                              "Limite de mensagens: 2.000 conversas por dia"]
    assert card.locator("small.limit").get_attribute("data-limit") == "TIER_2K"
    shot(page, "40-messaging-limit")
