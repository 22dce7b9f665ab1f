from django.apps import AppConfig


class CharactersConfig(AppConfig):
    name = "characters"
    verbose_name = "Characters"

    def ready(self) -> None:
        # The registration task and its job kind, in every process.
        from . import tasks  # noqa: F401
        from .jobs import register_job_kinds

        register_job_kinds()
