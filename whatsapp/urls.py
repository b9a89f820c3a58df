from django.urls import path

from . import views

app_name = "whatsapp"

urlpatterns = [
    path("onboarding-url", views.onboarding_url, name="onboarding-url"),
    path("check-connection", views.check_connection, name="check-connection"),
    path("webhook", views.webhook, name="webhook"),
]
