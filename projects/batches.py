"""Batches of renders: many projects (or one project in many variants)
submitted together, from a CSV a spreadsheet exported or from a JSON list.

Every row is checked before anything is created, and every bad row is
reported at once (``BatchError.errors``), so a user fixes the whole sheet in
one go; a batch is created whole or not at all.

CSV rows are numbered as a spreadsheet shows them (the header is row 1, the
first render row 2); JSON items are numbered from 1 in list order.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from media_jobs.models import Batch, Job

from .access import projects_for_user
from .models import FORMAT_CHOICES, PRESET_CHOICES, Project
from .pipeline import RenderNotReady, start_render
from .scene_engines import model_spec
from .styles import UnknownStyle, get_style

MAX_CSV_BYTES = 1024 * 1024
# The same limits as a project's target duration and the render API.
MIN_DURATION = 2.0
MAX_DURATION = 3600.0

PRIORITY_NAMES = {choice.name.lower(): int(choice) for choice in Job.Priority}

# Column / key -> the choices it must be one of (None: checked on its own).
OPTION_CHOICES: dict[str, list[str] | None] = {
    "preset": [value for value, _ in PRESET_CHOICES],
    "format": [value for value, _ in FORMAT_CHOICES],
    "duration": None,
    "style": None,  # the enabled presets, looked up when checked
    "model": None,
}
COLUMNS = ("project", *OPTION_CHOICES, "priority")

RowError = dict[str, Any]


def _style_problem(key: str) -> str | None:
    try:
        get_style(key)
    except UnknownStyle as exc:
        return str(exc)
    return None


class BatchError(ValueError):
    """The batch was refused; ``errors`` lists ``{"row", "field", "message"}``
    (``row`` is None for a problem of the whole file or list)."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        first = errors[0] if errors else {"message": "invalid batch"}
        where = f"row {first['row']}: " if first.get("row") else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}{first['message']}{more}")


@dataclass
class RenderRequest:
    project: Project
    options: dict[str, Any]
    priority: int
    # Where the request came from, to name it if the render is refused.
    row: int = field(default=0, compare=False)


def max_batch_renders() -> int:
    return int(getattr(settings, "STUDIO_MAX_BATCH_RENDERS", 500))


def _error(row: int | None, name: str | None, message: str) -> RowError:
    return {"row": row, "field": name, "message": message}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _project_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _priority(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITY_NAMES:
            return PRIORITY_NAMES[text]
        if not text.isdigit():
            return None
        number = int(text)
    else:
        return None
    return number if number in PRIORITY_NAMES.values() else None


def _duration(value: Any) -> float | str:
    """The duration in seconds, or what is wrong with it."""
    if isinstance(value, bool):
        return "must be a number of seconds"
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return "must be a number of seconds"
    if not math.isfinite(seconds) or seconds <= 0:
        return "must be a positive number of seconds"
    if not MIN_DURATION <= seconds <= MAX_DURATION:
        return f"must be between {MIN_DURATION:g} and {MAX_DURATION:g} seconds"
    return seconds


class _RowValidator:
    """Checks rows against one user's projects and the registry; the lookups
    are done once per batch, not once per row."""

    def __init__(self, user: Any, rows: list[tuple[int, dict[str, Any]]]):
        self.user = user
        ids = {_project_id(raw.get("project")) for _row, raw in rows}
        ids.discard(None)
        self.projects: dict[int, Project] = (
            projects_for_user(user).in_bulk(list(ids)) if ids else {}
        )
        self.models: dict[str, str | None] = {}

    def _model_problem(self, key: str) -> str | None:
        if key not in self.models:
            try:
                model_spec(key)
                self.models[key] = None
            except ValueError as exc:
                self.models[key] = str(exc)
        return self.models[key]

    def validate(
        self, row: int, raw: dict[str, Any]
    ) -> tuple[RenderRequest | None, list[RowError]]:
        errors: list[RowError] = []
        for name in raw:
            if name not in COLUMNS:
                errors.append(
                    _error(
                        row,
                        name,
                        f"unknown field {name!r}; expected {', '.join(COLUMNS)}",
                    )
                )
        project = None
        value = raw.get("project")
        if _blank(value):
            errors.append(_error(row, "project", "a project id is required"))
        else:
            pk = _project_id(value)
            project = self.projects.get(pk) if pk is not None else None
            if project is None:
                # Another user's project reads exactly like a missing one.
                errors.append(_error(row, "project", f"no project {value!s}"))
        options: dict[str, Any] = {}
        for name, choices in OPTION_CHOICES.items():
            value = raw.get(name)
            if _blank(value):
                continue
            if name == "duration":
                seconds = _duration(value)
                if isinstance(seconds, str):
                    errors.append(_error(row, name, seconds))
                else:
                    options[name] = seconds
                continue
            if not isinstance(value, str):
                errors.append(_error(row, name, "must be text"))
                continue
            value = value.strip()
            if choices is not None and value not in choices:
                errors.append(
                    _error(
                        row,
                        name,
                        f"{value!r} is not a valid {name};"
                        f" choose one of: {', '.join(choices)}",
                    )
                )
            elif name == "model" and (problem := self._model_problem(value)):
                errors.append(_error(row, name, problem))
            elif name == "style" and (problem := _style_problem(value)):
                errors.append(_error(row, name, problem))
            else:
                options[name] = value
        priority = int(Job.Priority.NORMAL)
        value = raw.get("priority")
        if not _blank(value):
            parsed = _priority(value)
            if parsed is None:
                errors.append(
                    _error(
                        row,
                        "priority",
                        f"{value!s} is not a priority; use low, normal, high,"
                        " urgent or 0 to 3",
                    )
                )
            else:
                priority = parsed
        if errors or project is None:
            return None, errors
        return RenderRequest(project, options, priority, row=row), []


def _validate_rows(
    rows: list[tuple[int, dict[str, Any]]], user: Any, where: str
) -> list[RenderRequest]:
    if not rows:
        raise BatchError([_error(None, where, "the batch has no renders")])
    limit = max_batch_renders()
    if len(rows) > limit:
        raise BatchError(
            [
                _error(
                    None,
                    where,
                    f"the batch has {len(rows)} renders; at most {limit} are allowed",
                )
            ]
        )
    validator = _RowValidator(user, rows)
    requests: list[RenderRequest] = []
    errors: list[RowError] = []
    for row, raw in rows:
        request, problems = validator.validate(row, raw)
        errors.extend(problems)
        if request is not None:
            requests.append(request)
    if errors:
        raise BatchError(errors)
    return requests


def decode_batch_csv(data: bytes) -> str:
    """The text of an uploaded CSV (UTF-8, with or without Excel's BOM)."""
    if len(data) > MAX_CSV_BYTES:
        raise BatchError([_error(None, "file", _too_large())])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchError(
            [_error(None, "file", "the file is not UTF-8 text; save it as CSV UTF-8")]
        ) from None


def _too_large() -> str:
    return f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB"


def parse_batch_csv(text: str, user: Any) -> list[RenderRequest]:
    """The renders a CSV asks for; ``BatchError`` listing every bad row."""
    if len(text.encode("utf-8")) > MAX_CSV_BYTES:
        raise BatchError([_error(None, "file", _too_large())])
    text = text.removeprefix("\ufeff")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BatchError(
            [_error(None, "file", f"not a valid CSV file: {exc}")]
        ) from None
    if not records or not any(cell.strip() for cell in records[0]):
        raise BatchError(
            [_error(1, None, f"a header row is required: {', '.join(COLUMNS)}")]
        )
    header = [cell.strip().lower() for cell in records[0]]
    errors: list[RowError] = []
    if "project" not in header:
        errors.append(_error(1, "project", "the header has no 'project' column"))
    for name in sorted({name for name in header if header.count(name) > 1}):
        errors.append(_error(1, name, f"the column {name!r} appears twice"))
    for name in header:
        if name and name not in COLUMNS:
            errors.append(
                _error(
                    1, name, f"unknown column {name!r}; expected {', '.join(COLUMNS)}"
                )
            )
    if errors:
        raise BatchError(errors)
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, cells in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, or ",,," rows a spreadsheet exports
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            errors.append(
                _error(number, None, "the row has more cells than the header")
            )
            continue
        rows.append(
            (
                number,
                {
                    name: value
                    for name, value in zip(header, cells, strict=False)
                    if name
                },
            )
        )
    if errors:
        raise BatchError(errors)
    return _validate_rows(rows, user, "file")


def parse_batch_json(items: list[dict[str, Any]], user: Any) -> list[RenderRequest]:
    """The renders a JSON list asks for; ``BatchError`` listing every bad item."""
    if not isinstance(items, list):
        raise BatchError([_error(None, "renders", "must be a list of renders")])
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            rows.append((number, item))
        else:
            errors.append(_error(number, None, "must be an object"))
    if errors:
        raise BatchError(errors)
    return _validate_rows(rows, user, "renders")


def submit_batch(user: Any, name: str, requests: list[RenderRequest]) -> Batch:
    """The batch and one queued job per request, all or nothing."""
    if not requests:
        raise BatchError([_error(None, "renders", "the batch has no renders")])
    with transaction.atomic():
        batch = Batch.objects.create(owner=user, name=(name or "").strip()[:200])
        for request in requests:
            if request.project.owner_id != user.pk:
                raise BatchError(
                    [_error(request.row, "project", f"no project {request.project.pk}")]
                )
            try:
                start_render(
                    request.project,
                    priority=request.priority,
                    batch=batch,
                    allow_duplicate=True,
                    **request.options,
                )
            except RenderNotReady as exc:
                # Leaving the atomic block by this exception rolls it all back.
                raise BatchError(
                    [
                        _error(
                            request.row,
                            "project",
                            f"project {request.project.pk}: {exc}",
                        )
                    ]
                ) from exc
    return batch
