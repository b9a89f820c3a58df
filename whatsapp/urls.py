from django.urls import path

from .api import conversations as conversations_api
from .api import privacy as privacy_api
from .api import sending as sending_api
from .api import takeover as takeover_api
from .api import usage as usage_api
from .api import views

app_name = "whatsapp"

urlpatterns = [
    # First: Meta's deliveries are most of the traffic, and patterns are tried in order.
    path("webhook", views.webhook, name="webhook"),
    path("onboarding-url", views.onboarding_url, name="onboarding-url"),
    path("check-connection", views.check_connection, name="check-connection"),
    path("embedded-signup/callback", views.embedded_signup_callback,
         name="embedded-signup-callback"),
    path("connection/status", views.connection_status, name="connection-status"),
    path("connection/disconnect", views.connection_disconnect, name="connection-disconnect"),
    path("connection/retry", views.connection_retry, name="connection-retry"),
    path("phone-numbers", views.phone_numbers, name="phone-numbers"),
    path("select-phone", views.select_phone, name="select-phone"),
    path("messages", sending_api.messages_create, name="messages"),
    path("messages/<uuid:message_id>", sending_api.message_detail, name="message-detail"),
    path("templates", sending_api.templates_list, name="templates"),
    path("usage", usage_api.usage, name="usage"),
    path("contacts/<int:contact_id>/export", privacy_api.contact_export, name="contact-export"),
    path("contacts/<int:contact_id>/erase", privacy_api.contact_erase, name="contact-erase"),
    path("conversations/<int:contact_id>/hand-back", takeover_api.hand_back,
         name="conversation-hand-back"),
    path("contacts", conversations_api.contacts_list, name="contacts"),
    path("contacts/<int:contact_id>/messages", conversations_api.contact_messages,
         name="contact-messages"),
    path("contacts/<int:contact_id>/request-phone", conversations_api.contact_request_phone,
         name="contact-request-phone"),
    path("media/<str:token>", conversations_api.media_file, name="media"),
]
