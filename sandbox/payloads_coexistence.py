"""Coexistence webhook bodies: history chunks (phases, progress, media, declined) and the
phone's address book (`smb_app_state_sync`), as META-PLATFORM.md §4 shows them."""

from typing import Any

from . import ids
from .envelope import Change, Target, _metadata, user_id_for

HISTORY_DECLINED = "History sync is turned off by the business from the WhatsApp Business App"


def _history_message(t: Target, peer: str, body: str | None, *, mine: bool, at: int,
                     status: str = "READ") -> dict[str, Any]:
    message: dict[str, Any] = {"from": t.display_phone_number if mine else peer}
    if mine:
        message["to"] = peer
    else:
        message["from_user_id"] = user_id_for(peer)
    message.update({"id": ids.wamid(), "timestamp": str(at)})
    if body is None:
        message["type"] = "media_placeholder"
    else:
        message.update({"type": "text", "text": {"body": body}})
    message["history_context"] = {"status": status}
    return message


def _thread(peer: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": peer, "context": {"wa_id": peer, "user_id": user_id_for(peer)},
            "messages": messages}


def _history(t: Target, phase: int, chunk: int, progress: int,
             threads: list[dict[str, Any]]) -> Change:
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "history": [{"metadata": {"phase": phase, "chunk_order": chunk, "progress": progress},
                          "threads": threads}]}
    return Change(t.waba_id, "history", value)


def history_phase0(t: Target) -> Change:
    day = 86400
    mariana, paulo = "5511987654321", "5521991112222"
    return _history(t, 0, 1, 15, [
        _thread(mariana, [
            _history_message(t, mariana, "Segue o link do imóvel: https://example.com/imovel/123",
                             mine=True, at=t.now - day // 2),
            _history_message(t, mariana, None, mine=True, at=t.now - day // 2 + 10,
                             status="DELIVERED"),
            _history_message(t, mariana, "Obrigada! Vou olhar.", mine=False,
                             at=t.now - day // 2 + 100),
        ]),
        _thread(paulo, [_history_message(t, paulo, "Tem vaga de garagem?", mine=False,
                                         at=t.now - day // 3)]),
    ])


def history_phase1_chunk1(t: Target) -> Change:
    mariana = "5511987654321"
    return _history(t, 1, 1, 45, [_thread(mariana, [
        _history_message(t, mariana, "Oi, boa tarde", mine=False, at=t.now - 10 * 86400)])])


def history_phase1_chunk2(t: Target) -> Change:
    joao = "5511976543210"
    at = t.now - 40 * 86400
    return _history(t, 1, 2, 60, [_thread(joao, [
        _history_message(t, joao, "Vocês trabalham com locação?", mine=False, at=at),
        _history_message(t, joao, "Sim! Qual região?", mine=True, at=at + 60),
    ])])


def history_phase2(t: Target) -> Change:
    paulo = "5521991112222"
    return _history(t, 2, 1, 100, [_thread(paulo, [
        _history_message(t, paulo, "Feliz aniversário de contrato!", mine=True,
                         at=t.now - 120 * 86400, status="PLAYED")])])


def history_declined(t: Target) -> Change:
    """The business said no to sharing chat history: error 2593109 (§3.5, §4.4)."""
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t), "history": [{"errors": [{
        "code": 2593109, "title": HISTORY_DECLINED, "message": HISTORY_DECLINED,
        "error_data": {"details": "History sharing is turned off by the business"}}]}]}
    return Change(t.waba_id, "history", value)


def _state_sync(t: Target, items: list[dict[str, Any]]) -> Change:
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t), "state_sync": items}
    return Change(t.waba_id, "smb_app_state_sync", value)


def contacts_add(t: Target) -> Change:
    people = [("Mariana Souza (Vila Mariana)", "Mariana", "5511987654321"),
              ("Paulo Lima", "Paulo", "5521991112222"),
              ("João Pereira", "João", "5511976543210")]
    return _state_sync(t, [
        {"type": "contact",
         "contact": {"full_name": full, "first_name": first, "phone_number": number,
                     "user_id": user_id_for(number)},
         "action": "add", "metadata": {"timestamp": str(t.now)}}
        for full, first, number in people])


def contacts_remove(t: Target) -> Change:
    number = "5521991112222"
    return _state_sync(t, [{"type": "contact",
                            "contact": {"phone_number": number, "user_id": user_id_for(number)},
                            "action": "remove", "metadata": {"timestamp": str(t.now)}}])
