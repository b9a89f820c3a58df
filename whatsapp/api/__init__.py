"""The JSON API (outer ring): DRF views that do HTTP only and call one room function each.

Tenant endpoints (`views`, `sending`), staff endpoints (`staff`), request serializers and the
presenters that turn rows into the JSON the pages and the API show. Domain errors carry a
code; the status each code answers is chosen here, with its reason.
"""
