from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from ops import health
from ops.metrics import metrics_view
from organizations.login import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from whatsapp.api import privacy as privacy_api
from whatsapp.api import staff as admin_api
from whatsapp.pages import privacy as privacy_pages
from whatsapp.pages import takeover as takeover_pages
from whatsapp.pages import views as pages

# Failed logins are throttled per account and per IP on both login pages (organizations/login.py).
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    # First: it holds the webhook, most of the traffic (patterns are tried in order).
    path("api/v1/whatsapp/", include("whatsapp.urls")),
    path("api/v1/meta/data-deletion", privacy_api.meta_data_deletion, name="meta-data-deletion"),
    path("", pages.home, name="home"),
    path("privacidade", privacy_pages.privacy_policy, name="privacy-policy"),
    path("privacidade/exclusao/<str:code>", privacy_pages.deletion_status,
         name="privacy-deletion-status"),
    path("dashboard/settings/whatsapp", pages.whatsapp_settings, name="whatsapp-settings"),
    path("dashboard/conversations/human", takeover_pages.takeovers, name="whatsapp-takeovers"),
    path("login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/admin/whatsapp/failed-webhooks", admin_api.failed_webhooks,
         name="admin-api-failed-webhooks"),
    path("api/admin/whatsapp/status", admin_api.status, name="admin-api-status"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]

if settings.META_SANDBOX:
    # The stand-in for Meta (demo and tests only; production settings refuse META_SANDBOX).
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
