"""Who is calling the sandbox's Graph API and what they may touch: tokens, appsecret_proof,
Graph-shaped errors, and the WABA and phone lookups every handler starts with."""

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse, QueryDict

from . import ids
from .models import (
    Phone,
    Switches,
    Token,
    Waba,
)

PHONE_DEFAULT_FIELDS = ("verified_name", "code_verification_status", "display_phone_number",
                        "quality_rating", "platform_type", "throughput", "last_onboarded_time",
                        "webhook_configuration", "id")


REGISTER_LIMIT = 10  # per number per 72-hour moving window (§3.4)


class GraphError(Exception):
    def __init__(self, status: int, code: int, message: str, *, subcode: int | None = None,
                 type: str = "OAuthException", error_data: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.subcode, self.type, self.error_data = subcode, type, error_data

    def response(self) -> JsonResponse:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.error_data:
            error["error_data"] = self.error_data
        error["fbtrace_id"] = ids.fbtrace_id()
        return JsonResponse({"error": error}, status=self.status)


def invalid_token(subcode: int | None = None, message: str = "") -> GraphError:
    # 401 with code 190, as the Cloud API answers an invalid or expired token.
    return GraphError(401, 190, message or "Invalid OAuth access token - Cannot parse access token",
                      subcode=subcode)


def no_permission(object_id: str, method: str = "get") -> GraphError:
    return GraphError(400, 100, f"Unsupported {method.lower()} request. Object with ID "
                      f"'{object_id}' does not exist, cannot be loaded due to missing permissions, "
                      "or does not support this operation. Please read the Graph API "
                      "documentation at https://developers.facebook.com/docs/graph-api",
                      subcode=33, type="GraphMethodException")


def invalid_param(message: str) -> GraphError:
    return GraphError(400, 100, message)


def request_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise invalid_param("(#100) The parameter body is not valid JSON") from exc
        return data if isinstance(data, dict) else {}
    if request.method == "POST":
        return request.POST.dict()
    return QueryDict(request.body).dict()  # DELETE with a form body


def request_param(request: HttpRequest, name: str) -> str:
    return str(request.GET.get(name) or request_body(request).get(name) or "")


def raw_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request_param(request, "access_token")


def _proof_ok(token: str, proof: str) -> bool:
    expected = hmac.new(settings.META_APP_SECRET.encode(), token.encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, proof)


def check_proof(request: HttpRequest, token: str, *, required: bool) -> None:
    proof = request_param(request, "appsecret_proof")
    if not proof:
        if required or Switches.get().require_appsecret_proof:
            raise invalid_param("API calls from the server require an appsecret_proof argument")
        return
    if not _proof_ok(token, proof):
        raise invalid_param("Invalid appsecret_proof provided in the API argument")


def is_system_user_token(token: str) -> bool:
    partner = settings.META_SYSTEM_USER_TOKEN
    return bool(partner) and hmac.compare_digest(token.encode(), partner.encode())


class Caller:
    """Who is calling: a business token (its WABAs) or the partner's system user (all shared)."""

    def __init__(self, token: Token | None):
        self.token = token

    def can_see(self, waba: Waba) -> bool:
        if not waba.shared:
            return False
        return self.token is None or waba.id in self.token.waba_ids


def caller_of(request: HttpRequest) -> Caller:
    raw = raw_token(request)
    if not raw:
        raise GraphError(400, 2500, "An active access token must be used to query information "
                                    "about the current user.")
    if is_system_user_token(raw):
        check_proof(request, raw, required=False)
        return Caller(None)
    token = Token.objects.filter(token=raw).first()
    if token is None:
        raise invalid_token()
    if token.revoked:
        raise invalid_token(458, "Error validating access token: The user has not authorized "
                                 "application " + (settings.META_APP_ID or "") + ".")
    if token.expired:
        raise invalid_token(463, "Error validating access token: Session has expired.")
    check_proof(request, raw, required=False)
    return Caller(token)


def waba_for(caller: Caller, waba_id: str, method: str) -> Waba:
    waba = Waba.objects.filter(pk=waba_id).select_related("business").first()
    if waba is None or not caller.can_see(waba):
        raise no_permission(waba_id, method)
    return waba


def phone_for(caller: Caller, phone_id: str, method: str) -> Phone:
    phone = Phone.objects.filter(pk=phone_id).select_related("waba", "waba__business").first()
    if phone is None or not caller.can_see(phone.waba):
        raise no_permission(phone_id, method)
    return phone
