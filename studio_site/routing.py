"""Websocket URL patterns (the ASGI counterpart of ``urls.py``)."""

from django.urls import path

from media_jobs.consumers import JobProgressConsumer

websocket_urlpatterns = [
    path("ws/jobs/<int:job_id>/", JobProgressConsumer.as_asgi()),
]
