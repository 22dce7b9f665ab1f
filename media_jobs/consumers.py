"""Live progress of one job over a websocket.

A page connects to ``/ws/jobs/<id>/`` (htmx's ws extension) and receives the
progress partial as an out-of-band swap; a script adds ``?format=json`` and
receives the ``ProgressPayload`` itself. Each job has its own group
(``job_<id>``), and only the job's owner may join it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .access import find_job_for_user
from .models import group_name
from .progress import ProgressPayload, ScenePayload, payload_for
from .views import render_progress_html, render_scene_html

# Application close codes (4000–4999): the HTTP status they stand for, + 4000.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _owned_payload(user: Any, job_id: int) -> ProgressPayload | None:
    job = find_job_for_user(user, job_id)
    return payload_for(job) if job is not None else None


class JobProgressConsumer(AsyncWebsocketConsumer):
    group: str | None = None
    as_json: bool = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        if await _owned_payload(user, job_id) is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.as_json = query.get("format", [""])[-1] == "json"
        self.group = group_name(job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Read the state after joining the group: an update sent in between is
        # queued for this consumer and arrives after this snapshot, never lost.
        current = await _owned_payload(user, job_id)
        if current is not None:
            await self._send_payload(current)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        # The socket only pushes; htmx's ws extension may send form values,
        # which mean nothing here.
        return

    async def job_progress(self, event: ProgressPayload) -> None:
        """Handler of ``job.progress`` group messages sent by ``progress.publish``."""
        await self._send_payload(event)

    async def job_scene(self, event: ScenePayload) -> None:
        """Handler of ``job.scene`` messages (``progress.publish_scene``)."""
        if self.as_json:
            await self.send(text_data=json.dumps(dict(event)))
        else:
            await self.send(text_data=render_scene_html(event))

    async def _send_payload(self, payload: ProgressPayload) -> None:
        if self.as_json:
            await self.send(text_data=json.dumps(dict(payload)))
        else:
            await self.send(text_data=render_progress_html(payload, oob=True))
