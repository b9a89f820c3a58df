"""Re-encrypts every stored secret with the current TOKEN_ENCRYPTION_KEY.

Every model field named `*_encrypted` holds a `crypto.encrypt` value; old values are read with
TOKEN_ENCRYPTION_OLD_KEYS. Each row is updated conditionally on its old ciphertext, so a token
written concurrently (a reconnect) is never overwritten with a stale one.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models

from whatsapp.core import crypto


@dataclass
class RotationResult:
    key_id: str
    rotated: int = 0
    already_current: int = 0
    failed: list[str] = field(default_factory=list)
    by_field: dict[str, int] = field(default_factory=dict)


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    # Concrete models only: a proxy (NumberUsage) shares its table with the model it proxies.
    return [(model, f.name) for model in apps.get_models() if not model._meta.proxy
            for f in model._meta.concrete_fields if f.name.endswith("_encrypted")]


def secrets_rotate(*, dry_run: bool = False,
                   progress: Callable[[int], None] | None = None) -> RotationResult:
    current = crypto.current_key_id()
    result = RotationResult(key_id=current)
    seen = 0
    for model, name in encrypted_fields():
        label = f"{model._meta.label}.{name}"
        rows = model.objects.exclude(**{name: ""}).values_list("pk", name)
        for pk, stored in rows.iterator(chunk_size=500):
            seen += 1
            if crypto.stored_key_id(stored) == current:
                result.already_current += 1
            else:
                try:
                    fresh = crypto.encrypt(crypto.decrypt(stored))
                except crypto.DecryptionError:
                    # Reported by row id only: never the value.
                    result.failed.append(f"{label}:{pk}")
                    continue
                if not dry_run:
                    model.objects.filter(pk=pk, **{name: stored}).update(**{name: fresh})
                result.rotated += 1
                result.by_field[label] = result.by_field.get(label, 0) + 1
            if progress and seen % 500 == 0:
                progress(seen)
    return result
