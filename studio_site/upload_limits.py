"""Refusing an oversized upload while it arrives.

Django spools every uploaded file to disk before a view sees it, so a size
check in the view (``validate_upload``) would only run after gigabytes had
been written. This handler counts each file's bytes as they arrive and drops
the file the moment it passes ``STUDIO_MAX_UPLOAD_BYTES``; the refusal is
recorded on the request, and the page and the API report it beside the other
files' results. The rest of the request is still read, so the other files of a
multi-file upload are kept.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler
from django.http import HttpRequest

# The same wording as the other refusals of validate_upload.
from workers.validation import _human_bytes, _shown

REJECTIONS_ATTRIBUTE = "upload_rejections"


def too_big_message(name: str, limit: int) -> str:
    return (
        f"{_shown(name)!r} is too big: it is over the limit of {_human_bytes(limit)}."
    )


def upload_rejections(request: HttpRequest) -> list[tuple[str, str]]:
    """(file name, message) of each file the upload handler refused.

    Only complete once the body has been parsed (``request.POST``/``FILES`` or
    DRF's ``request.data`` read). Works for DRF's ``Request`` too, which passes
    unknown attributes on to the Django request the handler saw.
    """
    return getattr(request, REJECTIONS_ATTRIBUTE, [])


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """``TemporaryFileUploadHandler`` that drops any file over the upload limit."""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        # Read at request time, so the operator's setting (and tests) apply.
        limit = settings.STUDIO_MAX_UPLOAD_BYTES
        if start + len(raw_data) > limit:
            self._refuse(limit)
            # The parser reads and discards the rest of this file, then goes
            # on with the next part of the body.
            raise SkipFile()
        return super().receive_data_chunk(raw_data, start)

    def _refuse(self, limit: int) -> None:
        # Close and unlink what was spooled so far: nothing of a refused file
        # may stay on disk.
        self.upload_interrupted()
        if self.request is None:
            return
        name = self.file_name or "file"
        rejections = getattr(self.request, REJECTIONS_ATTRIBUTE, None)
        if rejections is None:
            rejections = []
            setattr(self.request, REJECTIONS_ATTRIBUTE, rejections)
        rejections.append((name, too_big_message(name, limit)))
