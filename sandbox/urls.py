from django.urls import path, re_path

from . import api, graph, graph_media, pages, signup

app_name = "sandbox"

urlpatterns = [
    path("", pages.index, name="index"),
    # The short-lived media url that `GET /{media-id}` hands out (lookaside.fbsbx.com at Meta).
    path("media/<str:media_id>", graph_media.media_download, name="media-download"),
    path("switches", pages.switches_form, name="switches-form"),
    path("events", pages.event_form, name="event-form"),
    path("reset", pages.reset_form, name="reset-form"),
    path("sdk.js", pages.sdk_js, name="sdk"),
    # Embedded Signup: the JS SDK popup and the hosted link.
    path("dialog/", signup.dialog_start, name="dialog"),
    path("dialog/<str:session_id>/", signup.step, name="dialog-step"),
    path("onboard/", signup.onboard_start, name="onboard"),
    path("onboard/<str:session_id>/", signup.step, name="onboard-step"),
    # Graph API: META_GRAPH_API_URL = http://HOST:PORT/sandbox/graph
    re_path(r"^graph/(?P<version>v\d+\.\d+)/(?P<path>.+)$", graph.graph, name="graph"),
    # The sandbox's own API for tests and the demo.
    path("api/state", api.state, name="api-state"),
    path("api/switches", api.switches, name="api-switches"),
    path("api/reset", api.reset, name="api-reset"),
    path("api/faults", api.faults, name="api-faults"),
    path("api/events", api.events, name="api-events"),
    path("api/signups", api.signups, name="api-signups"),
    path("api/tokens/revoke", api.tokens_revoke, name="api-tokens-revoke"),
]
