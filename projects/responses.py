"""Serving stored user files (assets, rendered videos, thumbnails) to the
browser, the same way for the pages and the API."""

from __future__ import annotations

from django.http import FileResponse, HttpResponse
from django.utils.text import slugify

from media_jobs.files import stored_file_response

from .models import Asset, Render

VIDEO_CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}


def asset_response(asset: Asset) -> FileResponse:
    # Images and audio play inline on the project page; a document is only
    # ever downloaded, never rendered by the browser.
    return stored_file_response(
        asset.file.name,
        asset.mime,
        filename=asset.original_name,
        as_attachment=asset.kind == Asset.Kind.DOCUMENT,
    )


def render_download_name(render: Render, suffix: str) -> str:
    stem = slugify(render.project.title) or "render"
    return f"{stem}-{render.pk}{suffix}"


def render_video_response(render: Render, *, download: bool) -> FileResponse:
    """The rendered video; ``download`` asks the browser to save it."""
    fmt = render.output_format
    return stored_file_response(
        render.file,
        VIDEO_CONTENT_TYPES.get(fmt, "application/octet-stream"),
        filename=render_download_name(render, f".{fmt}"),
        as_attachment=download,
    )


def render_thumbnail_response(render: Render) -> FileResponse:
    return stored_file_response(
        render.thumbnail,
        "image/jpeg",
        filename=render_download_name(render, ".jpg"),
        as_attachment=False,
    )


def svg_response(svg: str) -> HttpResponse:
    """A picture the studio drew (no user markup in it); still sandboxed, so
    an SVG opened on its own can never run anything."""
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response
