"""Admin columns and read-only fields that show a code by its pt-BR word (whatsapp.backoffice
.labels), never the code itself."""

from collections.abc import Callable

from django.contrib import admin

from whatsapp.backoffice import labels


def coded(field: str, mapping: dict, description) -> Callable:
    """A ModelAdmin display method for `field` through `mapping` (ordered by the field)."""

    @admin.display(description=description, ordering=field)
    def show(model_admin, obj) -> str:  # assigned on a ModelAdmin: a method
        return labels.label(mapping, getattr(obj, field))

    return show
