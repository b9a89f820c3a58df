"""Everything a user reads is pt-BR: every message is translated, and the compiled catalog the
app loads matches the source catalog."""

import ast
import re

from django.conf import settings
from django.utils import translation

PO = settings.BASE_DIR / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"


def entries() -> list[tuple[str, str, bool]]:
    """(msgid, msgstr, fuzzy) of every singular entry, header excluded."""
    result, fuzzy = [], False
    for block in PO.read_text().split("\n\n"):
        fuzzy = "#, fuzzy" in block or ", fuzzy" in block
        if "msgid_plural" in block or block.lstrip().startswith("#~"):
            continue
        match = re.search(r'^msgid ((?:".*"\n?)+)msgstr ((?:".*"\n?)+)', block, re.M)
        if not match:
            continue
        msgid = "".join(ast.literal_eval(s) for s in match.group(1).split("\n") if s)
        msgstr = "".join(ast.literal_eval(s) for s in match.group(2).split("\n") if s)
        if msgid:
            result.append((msgid, msgstr, fuzzy))
    return result


def test_every_message_has_a_ptbr_translation():
    missing = [msgid for msgid, msgstr, fuzzy in entries() if not msgstr or fuzzy]
    assert missing == []


def test_compiled_catalog_matches_the_source():
    stale = []
    with translation.override("pt-br"):
        for msgid, msgstr, _fuzzy in entries():
            if translation.gettext(msgid) != msgstr:
                stale.append(msgid)
    assert stale == [], "run: manage.py compilemessages -l pt_BR --ignore=.venv"


def plural_entries() -> list[tuple[str, list[str]]]:
    """(msgid, [msgstr[0], msgstr[1]]) of every plural entry."""
    result = []
    for block in PO.read_text().split("\n\n"):
        if "msgid_plural" not in block or block.lstrip().startswith("#~"):
            continue
        # makemessages wraps long strings over several "…" lines: join them first.
        block = re.sub(r'"\n"', "", block)
        msgid = ast.literal_eval(re.search(r'^msgid (".*")$', block, re.M).group(1))
        forms = [ast.literal_eval(s) for s in re.findall(r'^msgstr\[\d\] (".*")$', block, re.M)]
        result.append((msgid, forms))
    return result


def test_every_plural_message_has_its_ptbr_forms():
    assert plural_entries(), "the catalog has plural messages (e.g. the 429 text)"
    missing = [msgid for msgid, forms in plural_entries() if len(forms) < 2 or not all(forms)]
    assert missing == []
