"""The parameters of a template send, checked against the synced template and turned into the
Graph `template.components`: positional ({{1}}) or named ({{first_name}}, `parameter_format:
NAMED`, sent with `parameter_name`) text, a media header (image, video or document, by
uploaded media id or https link) and buttons (quick-reply payload, URL suffix).

What Meta would refuse (132000 wrong parameter count, 132012 parameter format mismatch…) is
refused here first, with a pt-BR message saying what to change."""

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from whatsapp.models import MessageTemplate

from .templates import PLACEHOLDER, TemplateError

MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
BUTTON_KINDS = {"quick_reply": "QUICK_REPLY", "url": "URL"}


@dataclass
class TemplateParams:
    body: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)
    # {"type": "image"|"video"|"document", "id" or "link", "filename"? (documents)}
    header_media: dict[str, str] = field(default_factory=dict)
    # [{"index": 0, "type": "quick_reply", "payload": …} | {"index": 1, "type": "url", "text": …}]
    buttons: list[dict[str, Any]] = field(default_factory=list)

    def stored(self) -> dict:
        """As kept in OutboundMessage.parameters (body/header as before, the rest when used)."""
        data: dict[str, Any] = {"body": self.body, "header": self.header}
        if self.named:
            data["named"] = self.named
        if self.header_media:
            data["header_media"] = self.header_media
        if self.buttons:
            data["buttons"] = self.buttons
        return data

    @classmethod
    def from_stored(cls, data: dict | None) -> "TemplateParams":
        data = data or {}
        return cls(body=list(data.get("body") or []), header=list(data.get("header") or []),
                   named=dict(data.get("named") or {}),
                   header_media=dict(data.get("header_media") or {}),
                   buttons=list(data.get("buttons") or []))

    @property
    def is_plain(self) -> bool:
        """Only positional text (what Meta's hello_world, with no synced row, may take)."""
        return not (self.named or self.header_media or self.buttons)


def _component(template: MessageTemplate, kind: str) -> dict:
    for component in template.components or []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == kind:
            return component
    return {}


def _names(text: Any) -> list[str]:
    """The placeholders of a text, in order, each once."""
    return list(dict.fromkeys(PLACEHOLDER.findall(str(text or ""))))


def _header_format(template: MessageTemplate) -> str:
    header = _component(template, "HEADER")
    return str(header.get("format") or "TEXT").upper() if header else ""


def _template_buttons(template: MessageTemplate) -> list[dict]:
    buttons = _component(template, "BUTTONS").get("buttons")
    return [b for b in buttons if isinstance(b, dict)] if isinstance(buttons, list) else []


def is_named(template: MessageTemplate) -> bool:
    """NAMED as Meta says, or (an older sync without parameter_format) non-numeric names."""
    if template.parameter_format:
        return template.is_named
    names = _names(_component(template, "BODY").get("text"))
    if _header_format(template) == "TEXT":
        names += _names(_component(template, "HEADER").get("text"))
    return any(not n.isdigit() for n in names)


def params_check(template: MessageTemplate, params: TemplateParams) -> None:
    """TemplateError (pt-BR) when Meta would refuse these parameters for this template."""
    _check_text(template, params)
    _check_header_media(template, params)
    _check_buttons(template, params)


def _check_text(template: MessageTemplate, params: TemplateParams) -> None:
    name = {"name": template.name}
    if not is_named(template):
        if params.named:
            raise TemplateError(_("Template “%(name)s” uses numbered parameters ({{1}}, {{2}}…): "
                                  "send them in order in “parameters”.") % name)
        _check_count(_("body"), template.body_parameter_count, params.body)
        _check_count(_("header"), template.header_parameter_count, params.header)
        return
    if params.body or params.header:
        raise TemplateError(_("Template “%(name)s” uses named parameters: send them as "
                              "“namedParameters” ({“name”: “value”}).") % name)
    expected = set(_names(_component(template, "BODY").get("text")))
    if _header_format(template) == "TEXT":
        expected |= set(_names(_component(template, "HEADER").get("text")))
    missing, unknown = sorted(expected - set(params.named)), sorted(set(params.named) - expected)
    if missing:
        raise TemplateError(_("Missing template parameters: %(names)s.")
                            % {"names": ", ".join(missing)})
    if unknown:
        raise TemplateError(_("Template “%(name)s” has no parameters called %(names)s.")
                            % {**name, "names": ", ".join(unknown)})


def _check_count(part: str, expected: int, given: list) -> None:
    if len(given) != expected:
        raise TemplateError(_("The template %(part)s takes %(expected)d parameters, "
                              "%(given)d given.")
                            % {"part": part, "expected": expected, "given": len(given)})


MEDIA_WORDS = {"IMAGE": gettext_lazy("an image"), "VIDEO": gettext_lazy("a video"),
               "DOCUMENT": gettext_lazy("a document")}


def _check_header_media(template: MessageTemplate, params: TemplateParams) -> None:
    fmt = _header_format(template)
    given = str(params.header_media.get("type") or "").upper()
    if fmt in MEDIA_FORMATS and not given:
        raise TemplateError(_("The header of template “%(name)s” is %(media)s: send “header” "
                              "with its type and media id or link.")
                            % {"name": template.name, "media": MEDIA_WORDS[fmt]})
    if given and fmt not in MEDIA_FORMATS:
        raise TemplateError(_("Template “%(name)s” has no media header.")
                            % {"name": template.name})
    if given and given != fmt:
        raise TemplateError(_("The header of template “%(name)s” is %(media)s, not %(given)s.")
                            % {"name": template.name, "media": MEDIA_WORDS[fmt],
                               "given": MEDIA_WORDS.get(given, given.lower())})


def _check_buttons(template: MessageTemplate, params: TemplateParams) -> None:
    buttons = _template_buttons(template)
    given = {int(b["index"]): b for b in params.buttons}
    for index, button in given.items():
        if index >= len(buttons):
            raise TemplateError(_("Template “%(name)s” has no button %(index)d.")
                                % {"name": template.name, "index": index})
        kind = str(buttons[index].get("type", "")).upper()
        if BUTTON_KINDS.get(button["type"]) != kind:
            raise TemplateError(_("Button %(index)d of template “%(name)s” is not a "
                                  "%(type)s button.")
                                % {"name": template.name, "index": index,
                                   "type": button["type"]})
        if kind == "URL" and not _names(buttons[index].get("url")):
            raise TemplateError(_("Button %(index)d of template “%(name)s” has a fixed URL: "
                                  "it takes no parameter.")
                                % {"name": template.name, "index": index})
    for index, button in enumerate(buttons):
        dynamic = str(button.get("type", "")).upper() == "URL" and _names(button.get("url"))
        if dynamic and index not in given:
            raise TemplateError(_("Button %(index)d of template “%(name)s” needs its URL "
                                  "suffix (buttons: [{index, type: url, text}]).")
                                % {"name": template.name, "index": index})


def template_components(template: MessageTemplate | None, params: TemplateParams) -> list[dict]:
    """The Graph `template.components` of a send (already checked by params_check)."""
    components: list[dict] = []
    header_names, body_names = [], []
    if template is not None and params.named:
        if _header_format(template) == "TEXT":
            header_names = _names(_component(template, "HEADER").get("text"))
        body_names = _names(_component(template, "BODY").get("text"))
    if params.header_media:
        kind = str(params.header_media["type"]).lower()
        media = {k: params.header_media[k] for k in ("id", "link", "filename")
                 if params.header_media.get(k)}
        components.append({"type": "header", "parameters": [{"type": kind, kind: media}]})
    elif params.header or header_names:
        components.append({"type": "header", "parameters": _texts(params.header, header_names,
                                                                 params.named)})
    if params.body or body_names:
        components.append({"type": "body", "parameters": _texts(params.body, body_names,
                                                               params.named)})
    for button in sorted(params.buttons, key=lambda b: int(b["index"])):
        if button["type"] == "quick_reply":
            parameter = {"type": "payload", "payload": str(button["payload"])}
        else:
            parameter = {"type": "text", "text": str(button["text"])}
        components.append({"type": "button", "sub_type": button["type"],
                           "index": str(button["index"]), "parameters": [parameter]})
    return components


def _texts(positional: list, names: list[str], named: dict[str, str]) -> list[dict]:
    if names:
        return [{"type": "text", "parameter_name": n, "text": str(named[n])} for n in names]
    return [{"type": "text", "text": str(p)} for p in positional]
