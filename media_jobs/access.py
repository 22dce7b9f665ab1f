"""Owner scoping of jobs: the one place that decides which jobs a user may see.

Pages, the API and the websocket consumer all go through these functions, so
another user's job is "not found" everywhere, never "forbidden" (a 403 would
confirm that the id exists).
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from .models import Job, JobQuerySet


def jobs_for_user(user: AbstractBaseUser | AnonymousUser) -> JobQuerySet:
    """Every job ``user`` owns; nothing for an anonymous user."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.for_user(user)


def get_job_for_user(request: HttpRequest, pk: int) -> Job:
    """The job ``pk`` if the requesting user owns it, else ``Http404``."""
    return get_object_or_404(jobs_for_user(request.user), pk=pk)


def find_job_for_user(user: AbstractBaseUser | AnonymousUser, pk: int) -> Job | None:
    """Like ``get_job_for_user`` for callers without a request (the consumer)."""
    return jobs_for_user(user).filter(pk=pk).first()
