from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        # Canvases name tasks as strings; importing registers them in every
        # process (web, command line), not only in workers that autodiscover;
        # the receivers of job_state_changed likewise.
        from . import receivers, tasks  # noqa: F401
        from .pipeline import register_job_kinds

        register_job_kinds()
