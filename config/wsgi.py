import os

from django.core.wsgi import get_wsgi_application

# Production unless told otherwise (fails closed: DEBUG off, secrets required); bin/demo
# and bin/test export the development and test settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
