"""The Celery application of the studio.

Configuration comes from Django settings (``CELERY_*``); tasks live in each
app's ``tasks.py`` and are found by autodiscovery.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio_site.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
