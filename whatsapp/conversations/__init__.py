"""The conversations room: inbound facts about leads, stored exactly once in any order.

Routing and parking (`routing`: which configured number a change is for), leads and their
identities (`contacts`), messages, statuses and phone-app echoes (`messages`), coexistence
history, address book and BSUID changes (`history`), what Meta says about a number
(`numbers`), and the end of a human takeover (`takeover`: the tenant or the timeout hands a
conversation back). Ingestion functions run inside the one transaction of a delivery
(`whatsapp.webhooks.process`), and each fact writes its lead event (`whatsapp.events`) in that
same transaction. This room knows nothing of sending or onboarding: the webhook
dispatch calls each room in turn.
"""
