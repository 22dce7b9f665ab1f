"""Settings of the studio, all driven by ``STUDIO_*`` environment variables.

With nothing set, the studio runs as the embedded default: a SQLite file and
media under the checkout, tasks run in-process, the in-memory channel layer.
``DATABASE_URL`` switches to Postgres, ``STUDIO_REDIS_URL`` to a Redis broker,
result backend and channel layer (the worker farm). The README lists them all.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from kombu import Queue

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("STUDIO_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("STUDIO_DEBUG", False)


def _secret_key() -> str:
    """The configured key, or one made once and kept in the data directory.

    No key lives in the code; a single-machine install still gets a stable,
    random key without the operator having to make one.
    """
    configured = env_str("STUDIO_SECRET_KEY")
    if configured:
        return configured
    key_file = DATA_DIR / "secret_key"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, one writes the key and
        # both read it; 0o600 from the first byte.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("STUDIO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("STUDIO_CSRF_TRUSTED_ORIGINS", [])

# Behind TLS (nginx in docker/), everything that can be secure is.
HTTPS = env_bool("STUDIO_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("STUDIO_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("STUDIO_BEHIND_PROXY", HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_htmx",
    "media_jobs",
    "characters",
    "projects",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "studio_site.urls"
WSGI_APPLICATION = "studio_site.wsgi.application"
ASGI_APPLICATION = "studio_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "studio_site.context.studio",
                # The number of scenes waiting for the user's review (nav).
                "projects.review_views.review_count_context",
            ],
        },
    },
]

# --- database -------------------------------------------------------------
# DATABASE_URL (or DATABASE_URL_FILE, for a password kept in a secret file).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'studio.sqlite3'}",
        conn_max_age=env_int("STUDIO_DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # The embedded default runs tasks in a thread beside the web request.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Renders run in threads beside the web requests here: take the write
    # lock when a transaction begins, so a read-then-write transaction never
    # fails to upgrade its lock while another thread writes.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"
STUDIO_ALLOW_SIGNUP = env_bool("STUDIO_ALLOW_SIGNUP", True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("STUDIO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- files ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STUDIO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("STUDIO_MEDIA_ROOT", str(BASE_DIR / "media")))

S3_BUCKET = env_str("STUDIO_S3_BUCKET")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("STUDIO_S3_ENDPOINT_URL") or None,
            "region_name": env_str("STUDIO_S3_REGION") or None,
            "access_key": env_str("STUDIO_S3_ACCESS_KEY") or None,
            "secret_key": env_str("STUDIO_S3_SECRET_KEY") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Uploads: the limits that validation enforces (see workers/validation.py).
STUDIO_MAX_UPLOAD_BYTES = env_int("STUDIO_MAX_UPLOAD_MB", 200) * 1024 * 1024
STUDIO_MAX_IMAGE_PIXELS = env_int("STUDIO_MAX_IMAGE_PIXELS", 50_000_000)
STUDIO_MAX_AUDIO_SECONDS = env_float("STUDIO_MAX_AUDIO_SECONDS", 1800.0)
# Uploads are spooled to disk, and a file past STUDIO_MAX_UPLOAD_MB is dropped
# while it arrives rather than after the whole body has been written.
FILE_UPLOAD_HANDLERS = ["studio_site.upload_limits.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o640

# Where workers write scratch files; a task's scratch folder is removed when it ends.
STUDIO_WORK_DIR = Path(env_str("STUDIO_WORK_DIR", str(DATA_DIR / "work")))

# --- Redis, Celery, Channels -------------------------------------------------
REDIS_URL = env_str("STUDIO_REDIS_URL")
TASK_SOFT_TIME_LIMIT = env_int("STUDIO_TASK_SOFT_TIME_LIMIT", 1800)
TASK_TIME_LIMIT = env_int("STUDIO_TASK_TIME_LIMIT", TASK_SOFT_TIME_LIMIT + 120)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
# The time limits are the running worker's (``manage.py worker`` passes
# them), not set here: as Celery settings they would travel in every message
# with the sender's values.
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
# Longer than the longest task, or Redis hands an unacknowledged task to a
# second worker while the first is still on it. Redis keeps one list per
# priority step (0 is served first); jobs map their priority onto the steps.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("STUDIO_VISIBILITY_TIMEOUT", TASK_TIME_LIMIT + 600),
    "priority_steps": list(range(10)),
    "sep": ":",
    "queue_order_strategy": "priority",
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a Redis restart is waited out
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 30
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = 10
CELERY_TASK_DEFAULT_PRIORITY = 6
# Queues by capability: ``cpu`` for the engines without a GPU, ``io`` for
# storage and network (webhooks), and one queue per GPU memory class. A
# worker serves every queue its machine can (``manage.py worker --vram``).
STUDIO_GPU_QUEUES = {"gpu-8": 8, "gpu-16": 16, "gpu-24": 24, "gpu-48": 48}
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_QUEUES = [Queue(name) for name in ("cpu", "io", *STUDIO_GPU_QUEUES)]
# Routing lives here rather than on each task (Celery deprecates the task
# ``queue`` attribute). A scene's queue comes from its model's VRAM need and
# is set on its signature when the render fans out (media_jobs.queues).
CELERY_TASK_ROUTES = {
    "media_jobs.deliver_webhook": {"queue": "io"},
    "media_jobs.*": {"queue": "cpu"},
    "projects.*": {"queue": "cpu"},
    "characters.*": {"queue": "cpu"},
}
# The reconciler: finishes or fails jobs whose tasks were lost, and admits
# waiting jobs when a slot frees without anyone noticing.
STUDIO_RECONCILE_EVERY_S = env_float("STUDIO_RECONCILE_EVERY_S", 60.0)
CELERY_BEAT_SCHEDULE = {
    "reconcile-jobs": {
        "task": "media_jobs.reconcile",
        "schedule": STUDIO_RECONCILE_EVERY_S,
        "options": {"expires": STUDIO_RECONCILE_EVERY_S},
    }
}
# A job whose row has not moved for this long while its tasks should be
# running is looked at by the reconciler.
STUDIO_STALE_JOB_S = env_int("STUDIO_STALE_JOB_S", TASK_TIME_LIMIT + 60)
# A task still waiting in its queue (behind other jobs' work) may wait longer.
STUDIO_STALE_QUEUED_S = env_int("STUDIO_STALE_QUEUED_S", 6 * 3600)
# A task a worker lost (killed, out of memory) is redelivered; after this
# many starts it is failed instead of crashing workers for ever.
STUDIO_MAX_DELIVERIES = env_int("STUDIO_MAX_DELIVERIES", 3)
# Scheduling: how many jobs one user may have running, and how many jobs the
# farm works on at once; the rest wait, and slots go to users in turn.
STUDIO_MAX_RUNNING_JOBS_PER_USER = env_int("STUDIO_MAX_RUNNING_JOBS_PER_USER", 2)
STUDIO_MAX_RUNNING_JOBS = env_int("STUDIO_MAX_RUNNING_JOBS", 8)
# Webhooks: delivery, and whether they may reach loopback and LAN addresses.
STUDIO_WEBHOOK_TIMEOUT_S = env_float("STUDIO_WEBHOOK_TIMEOUT_S", 10.0)
STUDIO_WEBHOOK_BACKOFF_S = env_float("STUDIO_WEBHOOK_BACKOFF_S", 5.0)
STUDIO_WEBHOOK_MAX_ATTEMPTS = env_int("STUDIO_WEBHOOK_MAX_ATTEMPTS", 6)
STUDIO_WEBHOOK_ALLOW_PRIVATE = env_bool("STUDIO_WEBHOOK_ALLOW_PRIVATE", False)
# Bearer token of the Prometheus endpoint (/metrics); staff sessions need none.
STUDIO_METRICS_TOKEN = env_str("STUDIO_METRICS_TOKEN")
# Extra scene engines, as "module:attribute" entries (media_jobs.ModelSpec.engine
# names them); the built-in photo engine is always there.
STUDIO_SCENE_ENGINES = env_list("STUDIO_SCENE_ENGINES")
# Downloaded model weights (the InsightFace pack, generators) on this host.
STUDIO_MODEL_STORE = Path(env_str("STUDIO_MODEL_STORE", str(DATA_DIR / "models")))
# Workers report their queues, GPU memory and loaded models this often; a
# queue counts as served while a worker on it reported within the stale time.
STUDIO_HEARTBEAT_S = env_float("STUDIO_HEARTBEAT_S", 15.0)
STUDIO_HEARTBEAT_STALE_S = env_float("STUDIO_HEARTBEAT_STALE_S", 60.0)
# Models a GPU worker loads when it starts (registry keys, comma-separated).
STUDIO_PRELOAD_MODELS = env_list("STUDIO_PRELOAD_MODELS")
# Where `manage.py models pull` downloads from: the Hugging Face hub by
# default, or a mirror (an empty endpoint is the library's default); a token
# for gated repositories (STUDIO_HF_TOKEN_FILE for a secret file).
STUDIO_HF_ENDPOINT = env_str("STUDIO_HF_ENDPOINT")
STUDIO_HF_TOKEN = env_str("STUDIO_HF_TOKEN")
# Cloud models are offered once their key is set.
STUDIO_GEMINI_API_KEY = env_str("STUDIO_GEMINI_API_KEY")
STUDIO_OPENAI_API_KEY = env_str("STUDIO_OPENAI_API_KEY")
STUDIO_ANTHROPIC_API_KEY = env_str("STUDIO_ANTHROPIC_API_KEY")
STUDIO_RUNWAY_API_KEY = env_str("STUDIO_RUNWAY_API_KEY")
STUDIO_KLING_API_KEY = env_str("STUDIO_KLING_API_KEY")
STUDIO_SUNO_API_KEY = env_str("STUDIO_SUNO_API_KEY")
STUDIO_ELEVENLABS_API_KEY = env_str("STUDIO_ELEVENLABS_API_KEY")
# The cloud scene services' base URLs (registry params `api`), for a proxy or
# a regional endpoint; empty: the service's own (workers/scenes/cloud.py).
STUDIO_OPENAI_BASE_URL = env_str("STUDIO_OPENAI_BASE_URL")
STUDIO_GEMINI_BASE_URL = env_str("STUDIO_GEMINI_BASE_URL")
STUDIO_RUNWAY_BASE_URL = env_str("STUDIO_RUNWAY_BASE_URL")
STUDIO_KLING_BASE_URL = env_str("STUDIO_KLING_BASE_URL")
# Whether the cloud models' results may be fetched from loopback and LAN
# addresses (a service's gateway inside the studio's network).
STUDIO_CLOUD_ALLOW_PRIVATE = env_bool("STUDIO_CLOUD_ALLOW_PRIVATE", False)
# Characters: the face provider new characters are registered with ("dlib",
# embedded, or "insightface", from the model store), and the consistency gate
# every scene of a character passes: generation attempts before a scene is
# sent to its owner's review, sampled frames per second, and the share of
# sampled frames that must show the character.
STUDIO_FACE_PROVIDER = env_str("STUDIO_FACE_PROVIDER", "dlib")
STUDIO_CONSISTENCY_TRIES = env_int("STUDIO_CONSISTENCY_TRIES", 3)
STUDIO_GATE_SAMPLES_PER_SECOND = env_float("STUDIO_GATE_SAMPLES_PER_SECOND", 2.0)
STUDIO_GATE_MIN_PRESENCE = env_float("STUDIO_GATE_MIN_PRESENCE", 0.5)
# The storyboard's optional LLM stage: any OpenAI-compatible chat endpoint
# (llama.cpp's server, Ollama's /v1, vLLM, or a cloud provider). Off unless
# both the URL and the model are set; on a timeout or an error the storyboard
# keeps its template prompts and says why.
STUDIO_LLM_BASE_URL = env_str("STUDIO_LLM_BASE_URL")
STUDIO_LLM_API_KEY = env_str("STUDIO_LLM_API_KEY")
STUDIO_LLM_MODEL = env_str("STUDIO_LLM_MODEL")
STUDIO_LLM_TIMEOUT = env_float("STUDIO_LLM_TIMEOUT", 30.0)
# A failing scene reaches the render's error callback directly, not only
# through the chord body; failing the job is idempotent either way.
CELERY_TASK_ALLOW_ERROR_CB_ON_CHORD_HEADER = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# In the embedded default a render started from a page runs in a thread of the
# web process, so the request returns at once and progress still streams.
STUDIO_RUN_TASKS_IN_THREAD = env_bool("STUDIO_RUN_TASKS_IN_THREAD", not REDIS_URL)

# Throttle counters and other short-lived values. One web process can keep
# them in memory; several behind a balancer share them in Redis.
CACHE_URL = env_str("STUDIO_CACHE_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
    }
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("STUDIO_API_ANON_RATE", "60/min"),
        "user": env_str("STUDIO_API_USER_RATE", "1200/min"),
        # Obtaining a token checks a password: slow down guessing.
        "token": env_str("STUDIO_API_TOKEN_RATE", "10/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Nano Banana Studio API",
    "DESCRIPTION": "Projects, assets, render jobs and their progress.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Stages and tasks share one status set, distinct from a job's.
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "media_jobs.models.RunStatus"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
