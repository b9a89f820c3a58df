"""The conversations room: inbound facts about leads, stored exactly once in any order.

Routing and parking (`routing`: which configured number a change is for), leads and their
identities (`contacts`), messages, statuses and phone-app echoes (`messages`), coexistence
history, address book and BSUID changes (`history`), and what Meta says about a number
(`numbers`). Every function runs inside the one transaction of a delivery
(`whatsapp.webhooks.process`). This room knows nothing of sending or onboarding: the webhook
dispatch calls each room in turn.
"""
