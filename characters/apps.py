from django.apps import AppConfig


class CharactersConfig(AppConfig):
    name = "characters"
    verbose_name = "Characters"

    def ready(self) -> None:
        # The registration task and its job kind, in every process.
        from . import tasks  # noqa: F401
        from .jobs import register_job_kinds

        register_job_kinds()
        # A worker can load the face models when it starts.
        from media_jobs.heartbeat import register_preloader
        from workers.faces.providers import INSIGHTFACE_KEY

        from .registration import face_provider

        register_preloader("dlib", lambda: face_provider("dlib"))
        register_preloader(INSIGHTFACE_KEY, lambda: face_provider("insightface"))
