"""The product's URLs plus the reference endpoint through Django (bench only)."""

from django.urls import path

from config.urls import urlpatterns as product_urlpatterns

from . import reference

urlpatterns = [
    path(reference.DJANGO_PATH.lstrip("/"), reference.django_view),
    *product_urlpatterns,
]
