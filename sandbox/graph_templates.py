"""The sandbox's message templates: the WABA listing (paged, as Graph pages it) and the check
Meta makes of a template send (name and language, positional or named parameters, media
header, buttons), answering Meta's 132xxx errors.

Every sandbox WABA has the same templates. The listing is served two at a time whatever
`limit` asks (Graph may return short pages too), so a caller that reads one page only misses
templates."""

import base64
import re
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest

from .graph_access import GraphError

PAGE_SIZE = 2
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")

TEMPLATES: list[dict[str, Any]] = [
    {"name": "confirmacao_visita", "status": "APPROVED", "category": "UTILITY",
     "language": "pt_BR", "id": "606000000000001", "parameter_format": "POSITIONAL",
     "components": [
         {"type": "BODY", "text": "Olá {{1}}, sua visita ao imóvel está confirmada para {{2}}."}]},
    {"name": "hello_world", "status": "APPROVED", "category": "UTILITY",
     "language": "en_US", "id": "606000000000003", "parameter_format": "POSITIONAL",
     "components": [{"type": "BODY", "text": "Hello World"}]},
    {"name": "visita_agendada", "status": "APPROVED", "category": "UTILITY",
     "language": "pt_BR", "id": "606000000000004", "parameter_format": "NAMED",
     "components": [
         {"type": "HEADER", "format": "IMAGE"},
         {"type": "BODY", "text": "Olá {{nome}}, sua visita ao {{imovel}} está marcada.",
          "example": {"body_text_named_params": [
              {"param_name": "nome", "example": "Mariana"},
              {"param_name": "imovel", "example": "apartamento da Vila Mariana"}]}},
         {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirmar"},
                                         {"type": "QUICK_REPLY", "text": "Remarcar"}]}]},
    {"name": "ficha_imovel", "status": "APPROVED", "category": "MARKETING",
     "language": "pt_BR", "id": "606000000000005", "parameter_format": "POSITIONAL",
     "components": [
         {"type": "HEADER", "format": "DOCUMENT"},
         {"type": "BODY", "text": "Segue a ficha do imóvel {{1}}."},
         {"type": "BUTTONS", "buttons": [
             {"type": "URL", "text": "Ver fotos", "url": "https://imoveis.example/ficha/{{1}}"}]}]},
    {"name": "tour_virtual", "status": "APPROVED", "category": "MARKETING",
     "language": "pt_BR", "id": "606000000000006", "parameter_format": "POSITIONAL",
     "components": [{"type": "HEADER", "format": "VIDEO"},
                    {"type": "BODY", "text": "Conheça o imóvel por dentro."}]},
]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))
    except ValueError:
        raise GraphError(400, 100, "(#100) Invalid cursor", type="GraphMethodException") from None


def templates_page(request: HttpRequest) -> dict[str, Any]:
    """One page of the listing, with `paging.next` while more remain (Graph's shape)."""
    start = _offset(request.GET.get("after", "")) if request.GET.get("after") else 0
    rows = TEMPLATES[start:start + PAGE_SIZE]
    paging: dict[str, Any] = {"cursors": {"before": _cursor(start),
                                          "after": _cursor(start + len(rows))}}
    if start + PAGE_SIZE < len(TEMPLATES):
        query = {k: v for k, v in request.GET.items() if k != "after"}
        query["after"] = paging["cursors"]["after"]
        paging["next"] = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
    return {"data": rows, "paging": paging}


def _params_error(message: str) -> GraphError:
    return GraphError(400, 132000, f"(#132000) Number of parameters does not match the "
                                   f"expected number of params: {message}",
                      type="OAuthException")


def template_send_check(payload: dict[str, Any]) -> None:
    """Meta's checks of `type: template` (132001 unknown, 132000 parameters, 132012 format)."""
    template = payload.get("template") if isinstance(payload.get("template"), dict) else {}
    language = (template.get("language") or {}).get("code") if isinstance(
        template.get("language"), dict) else None
    found = next((t for t in TEMPLATES if t["name"] == template.get("name")
                  and t["language"] == language), None)
    if found is None:
        raise GraphError(404, 132001, "(#132001) Template name does not exist in the translation",
                         type="OAuthException")
    sent = {str(c.get("type", "")).lower(): c for c in template.get("components") or []
            if isinstance(c, dict) and c.get("type") != "button"}
    buttons = {str(c.get("index")): c for c in template.get("components") or []
               if isinstance(c, dict) and c.get("type") == "button"}
    spec = {c["type"].lower(): c for c in found["components"]}
    named = found["parameter_format"] == "NAMED"
    for part in ("header", "body"):
        _check_part(part, spec.get(part), sent.get(part), named=named)
    _check_buttons(spec.get("buttons", {}).get("buttons", []), buttons)


def _check_part(part: str, spec: dict | None, sent: dict | None, *, named: bool) -> None:
    params = [p for p in (sent or {}).get("parameters") or [] if isinstance(p, dict)]
    fmt = str((spec or {}).get("format") or "TEXT").upper()
    if part == "header" and spec and fmt != "TEXT":
        kind = fmt.lower()
        if len(params) != 1 or params[0].get("type") != kind or not isinstance(
                params[0].get(kind), dict) or not (params[0][kind].get("id")
                                                   or params[0][kind].get("link")):
            raise _params_error(f"header needs one {kind} (id or link)")
        return
    expected = list(dict.fromkeys(PLACEHOLDER.findall(str((spec or {}).get("text", "")))))
    if len(params) != len(expected) or any(p.get("type") != "text" for p in params):
        raise _params_error(f"{part} expects {len(expected)}, got {len(params)}")
    if named and sorted(p.get("parameter_name") or "" for p in params) != sorted(expected):
        raise GraphError(400, 132012, "(#132012) Parameter format does not match format in the "
                                      "created template", type="OAuthException")
    if not named and any(p.get("parameter_name") for p in params):
        raise GraphError(400, 132012, "(#132012) Parameter format does not match format in the "
                                      "created template", type="OAuthException")


def _check_buttons(spec: list[dict], sent: dict[str, dict]) -> None:
    for index, button in sent.items():
        if not index.isdigit() or int(index) >= len(spec):
            raise _params_error(f"no button {index}")
        kind = spec[int(index)]["type"]
        params = button.get("parameters") or []
        if kind == "QUICK_REPLY" and (button.get("sub_type") != "quick_reply"
                                      or not params or not params[0].get("payload")):
            raise _params_error(f"button {index} is a quick reply (payload)")
        if kind == "URL" and (button.get("sub_type") != "url" or not params
                              or not params[0].get("text")):
            raise _params_error(f"button {index} is a URL (text)")
    for index, button in enumerate(spec):
        if button["type"] == "URL" and PLACEHOLDER.search(button["url"]) and str(index) not in sent:
            raise _params_error(f"button {index} needs its URL suffix")
