"""factory-boy factories for the studio's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from media_jobs.models import Job
from projects.models import Project, Scene


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Video {n}")
    target_duration = 6.0
    preset = "preview"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    project = factory.SubFactory(ProjectFactory)
    owner = factory.LazyAttribute(lambda job: job.project.owner)
    kind = Job.Kind.RENDER


class SceneFactory(factory.django.DjangoModelFactory):
    """A finished scene of a render: 2 s (60 frames) per index, zooming in.

    ``image`` has no default: pass the Asset the scene shows.
    """

    class Meta:
        model = Scene

    job = factory.SubFactory(JobFactory)
    project = factory.LazyAttribute(lambda scene: scene.job.project)
    index = factory.Sequence(lambda n: n)
    start = factory.LazyAttribute(lambda scene: scene.index * 2.0)
    end = factory.LazyAttribute(lambda scene: scene.index * 2.0 + 2.0)
    start_frame = factory.LazyAttribute(lambda scene: scene.index * 60)
    end_frame = factory.LazyAttribute(lambda scene: scene.index * 60 + 60)
    move = "zoom_in"
    status = Scene.Status.DONE
