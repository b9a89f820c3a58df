"""A small client for the Graph API calls this product makes (META-PLATFORM.md §2–3).

Talks HTTP only, to `META_GRAPH_API_URL/META_GRAPH_API_VERSION`, so the Meta sandbox (or a
`responses` mock) stands in for Meta without any code path of its own. Tokens are sent in the
Authorization header, never in URLs that could be logged.
"""

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings

from . import metrics

logger = logging.getLogger(__name__)
TIMEOUT = (3.05, 15)
# Pages followed on a paginated edge before giving up (100 rows a page: 50,000 rows).
MAX_PAGES = 500

# Graph error codes worth retrying: temporary/unknown errors, throttling, service unavailable.
TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131016, 131057, 133004}
PHONE_FIELDS = (
    "id,display_phone_number,verified_name,quality_rating,platform_type,is_on_biz_app,"
    "code_verification_status,throughput,name_status,status"
)
# The business portfolio's messaging limit (TIER_250 … TIER_UNLIMITED), shared by all its
# numbers since Oct 2025. Graph v24+ only knows the new field; v23 and older only the old one
# (asking a version for a field it lacks is error #100), META-PLATFORM.md §0.
LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"
OLD_LIMIT_FIELD = "messaging_limit_tier"
FIRST_VERSION_WITH_LIMIT_FIELD = 24
# Template listings: Meta's page size is 25 by default (100 at most); a WABA has at most a few
# hundred templates, so this many pages is a runaway guard, not a real limit.
TEMPLATE_PAGE_SIZE = 100
MAX_TEMPLATE_PAGES = 50


def graph_major_version(version: str) -> int | None:
    """`v25.0` → 25; None when the pinned version cannot be read."""
    digits = version.lstrip("vV").split(".")[0]
    return int(digits) if digits.isdigit() else None


def limit_field(version: str | None = None) -> str:
    """The messaging-limit field the pinned Graph version knows."""
    major = graph_major_version(version or settings.META_GRAPH_API_VERSION)
    old = major is not None and major < FIRST_VERSION_WITH_LIMIT_FIELD
    return OLD_LIMIT_FIELD if old else LIMIT_FIELD


def messaging_limit_of(number: dict) -> str:
    """The limit a phone-number node carries, whichever field name it came under; an object
    (should Meta wrap it) gives its tier."""
    value = number.get(LIMIT_FIELD) or number.get(OLD_LIMIT_FIELD) or ""
    if isinstance(value, dict):
        value = value.get("tier") or value.get("value") or value.get("limit") or ""
    return str(value)[:32]


@dataclass
class GraphError(Exception):
    status: int
    code: int | None
    message: str
    subcode: int | None = None
    type: str = ""
    fbtrace_id: str = ""

    def __str__(self) -> str:
        return f"Graph error {self.code} (HTTP {self.status}): {self.message}"

    @property
    def is_credential_error(self) -> bool:
        """The token is expired, revoked or lacks permission: the tenant must reconnect."""
        return self.code == 190 or (self.code == 100 and self.subcode == 33)

    @property
    def is_transient(self) -> bool:
        if self.is_credential_error:
            return False
        return self.status >= 500 or self.status == 429 or self.code in TRANSIENT_CODES


class MediaTooLarge(Exception):
    """A media download went past the size limit (nothing more is read)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"media larger than the limit ({size} bytes read)")
        self.size = size


class GraphClient:
    def __init__(self, access_token: str = "", *, session: requests.Session | None = None):
        self.access_token = access_token
        self.session = session or requests.Session()
        self.base = f"{settings.META_GRAPH_API_URL}/{settings.META_GRAPH_API_VERSION}"

    # --- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, token: str | None = None,
                 params: dict | None = None, json: dict | None = None,
                 data: dict | None = None) -> dict[str, Any]:
        """One Graph call, counted by endpoint template and outcome (core.metrics)."""
        started = time.monotonic()
        outcome = "error"
        try:
            body = self._call(method, path, token=token, params=params, json=json, data=data)
            outcome = "ok"
            return body
        except GraphError as exc:
            outcome = ("network_error" if exc.status == 0 else "credential_error"
                       if exc.is_credential_error else "transient_error" if exc.is_transient
                       else "error")
            raise
        finally:
            metrics.graph_call(method, path, outcome, time.monotonic() - started)

    def _call(self, method: str, path: str, *, token: str | None, params: dict | None,
              json: dict | None, data: dict | None) -> dict[str, Any]:
        token = self.access_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = dict(params or {})
        if token and settings.META_APP_SECRET and "appsecret_proof" not in (data or {}):
            params["appsecret_proof"] = appsecret_proof(token)
        try:
            response = self.session.request(method, f"{self.base}/{path.lstrip('/')}",
                                            params=params, json=json, data=data,
                                            headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            # Network trouble is transient by nature (status 0 = no HTTP answer).
            raise GraphError(status=0, code=None, message=type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or (isinstance(body, dict) and "error" in body):
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise GraphError(
                status=response.status_code,
                code=error.get("code"),
                subcode=error.get("error_subcode"),
                message=str(error.get("message") or response.reason or "")[:500],
                type=str(error.get("type") or ""),
                fbtrace_id=str(error.get("fbtrace_id") or ""),
            )
        return body if isinstance(body, dict) else {"data": body}

    # --- onboarding -------------------------------------------------------------------------
    def exchange_code(self, code: str) -> dict:
        """Embedded Signup code (30 s life) → business token `{access_token, ...}`."""
        return self._request("GET", "oauth/access_token", token="", params={
            "client_id": settings.META_APP_ID,
            "client_secret": settings.META_APP_SECRET,
            "code": code,
        })

    def debug_token(self, input_token: str) -> dict:
        """Token metadata (`is_valid`, `expires_at`, `granular_scopes`), via the app token."""
        body = self._request("GET", "debug_token", token="", params={
            "input_token": input_token, "access_token": app_token(),
        })
        return body.get("data", {})

    def app_token_info(self) -> dict:
        """debug_token of the app token itself (`type: APP`, `is_valid`): proves that
        META_APP_ID and META_APP_SECRET belong together."""
        return self.debug_token(app_token())

    def app_subscriptions(self) -> list[dict]:
        """The app's webhook subscriptions, one per object, with their fields (app token)."""
        body = self._request("GET", f"{settings.META_APP_ID}/subscriptions", token=app_token())
        return list(body.get("data", []))

    def system_user_access_token(self, business_id: str) -> str:
        """Hosted ES: the customer's business token, fetched with our system user token."""
        system_token = settings.META_SYSTEM_USER_TOKEN
        body = self._request("POST", f"{business_id}/system_user_access_tokens",
                             token=system_token,
                             data={"appsecret_proof": appsecret_proof(system_token),
                                   "fetch_only": "true"})
        return str(body.get("access_token", ""))

    def client_wabas(self, business_id: str) -> list[dict]:
        """Every WABA shared with our (partner) business portfolio, across all pages."""
        return self.all_pages(f"{business_id}/client_whatsapp_business_accounts",
                              {"fields": "id,name,owner_business_info", "limit": 100})

    def all_pages(self, path: str, params: dict | None = None) -> list[dict]:
        """A Graph edge's `data`, following the `after` cursor while Meta says there is a
        `next` page (at most MAX_PAGES pages, so a looping cursor cannot hang a worker)."""
        rows: list[dict] = []
        query = dict(params or {})
        for _page in range(MAX_PAGES):
            body = self._request("GET", path, params=query)
            rows.extend(row for row in body.get("data", []) if isinstance(row, dict))
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after or after == query.get("after"):
                break
            query["after"] = after
        return rows

    # --- WABA and numbers -------------------------------------------------------------------
    def subscribe_app(self, waba_id: str) -> bool:
        return bool(self._request("POST", f"{waba_id}/subscribed_apps").get("success"))

    def subscribed_apps(self, waba_id: str) -> list[dict]:
        return list(self._request("GET", f"{waba_id}/subscribed_apps").get("data", []))

    def unsubscribe_app(self, waba_id: str) -> bool:
        return bool(self._request("DELETE", f"{waba_id}/subscribed_apps").get("success"))

    def waba_owner_business(self, waba_id: str) -> str:
        """The business portfolio that owns the WABA, as Meta knows it (`owner_business_info`);
        asked with a token proven to cover the WABA, it is Meta's word, not the browser's."""
        body = self._request("GET", waba_id, params={"fields": "owner_business_info"})
        info = body.get("owner_business_info")
        return str(info.get("id") or "") if isinstance(info, dict) else ""

    def phone_numbers(self, waba_id: str) -> list[dict]:
        fields = f"{PHONE_FIELDS},{limit_field()}"
        body = self._request("GET", f"{waba_id}/phone_numbers", params={"fields": fields})
        return list(body.get("data", []))

    def register_phone(self, phone_number_id: str, pin: str) -> bool:
        body = self._request("POST", f"{phone_number_id}/register",
                             json={"messaging_product": "whatsapp", "pin": pin})
        return bool(body.get("success"))

    def smb_app_data(self, phone_number_id: str, sync_type: str) -> str:
        """Coexistence sync (`smb_app_state_sync` or `history`); returns Meta's request_id."""
        body = self._request("POST", f"{phone_number_id}/smb_app_data",
                             json={"messaging_product": "whatsapp", "sync_type": sync_type})
        return str(body.get("request_id", ""))

    def send_message(self, phone_number_id: str, payload: dict) -> dict:
        return self._request("POST", f"{phone_number_id}/messages",
                             json={"messaging_product": "whatsapp", **payload})

    def media_info(self, media_id: str) -> dict:
        """`GET /{media-id}`: `{url, mime_type, sha256, file_size, id}`; the url lives minutes."""
        return self._request("GET", media_id)

    def media_download(self, url: str, *, max_bytes: int) -> tuple[bytes, str]:
        """The bytes behind a media url (with the token), and the Content-Type; more than
        `max_bytes` raises MediaTooLarge without reading the rest."""
        started, outcome = time.monotonic(), "error"
        try:
            response = self.session.get(
                url, headers={"Authorization": f"Bearer {self.access_token}"}, timeout=TIMEOUT,
                stream=True)
        except requests.RequestException as exc:
            metrics.graph_call("GET", "media_download", "network_error", 0.0)
            raise GraphError(status=0, code=None, message=type(exc).__name__) from exc
        try:
            if response.status_code >= 400:
                outcome = "transient_error" if response.status_code >= 500 else "error"
                raise GraphError(status=response.status_code, code=None,
                                 message=str(response.reason or "")[:500])
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(size)
                chunks.append(chunk)
            outcome = "ok"
            return b"".join(chunks), response.headers.get("Content-Type", "")
        finally:
            response.close()
            metrics.graph_call("GET", "media_download", outcome, time.monotonic() - started)

    def message_templates(self, waba_id: str) -> list[dict]:
        """Every template of the WABA, following `paging.next` page after page.

        The next page is asked for with its `after` cursor on our own URL, never by calling
        the `next` URL Meta returns (it would carry a token and could point anywhere)."""
        templates: list[dict] = []
        params: dict[str, str] = {"limit": str(TEMPLATE_PAGE_SIZE)}
        seen: set[str] = set()
        for _page in range(MAX_TEMPLATE_PAGES):
            body = self._request("GET", f"{waba_id}/message_templates", params=params)
            templates += [t for t in body.get("data", []) if isinstance(t, dict)]
            after = next_cursor(body)
            if not after or after in seen:
                return templates
            seen.add(after)
            params = {**params, "after": after}
        logger.warning("Templates of WABA %s: stopped after %d pages", waba_id, MAX_TEMPLATE_PAGES)
        return templates


def next_cursor(body: dict) -> str:
    """The `after` cursor of a Graph listing that has a next page ("" on the last page)."""
    paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
    if not paging.get("next"):
        return ""
    cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
    after = cursors.get("after")
    if not after:
        query = parse_qs(urlsplit(str(paging["next"])).query)
        after = (query.get("after") or [""])[0]
    return str(after or "")


def app_token() -> str:
    return f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"


def appsecret_proof(token: str) -> str:
    return hmac.new(settings.META_APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
