from django.apps import AppConfig


class MediaJobsConfig(AppConfig):
    name = "media_jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # Receivers of job_state_changed, and the tasks, in every process.
        from . import admission, heartbeat, model_jobs, tasks  # noqa: F401

        model_jobs.register_job_kinds()
