from django.apps import AppConfig


class MediaJobsConfig(AppConfig):
    name = "media_jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # Receivers of job_state_changed, and the tasks, in every process.
        from . import admission, tasks  # noqa: F401
