"""Request ids: taken from `X-Request-ID` (when sane) or generated, echoed on the response."""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .logging import org_id_var, request_id_var

# A proxy's id is trusted only if it looks like an id: it ends up in every log line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._\-]{8,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        id_token = request_id_var.set(request_id)
        org_token = org_id_var.set("")
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(id_token)
            org_id_var.reset(org_token)
        response["X-Request-ID"] = request_id
        return response
