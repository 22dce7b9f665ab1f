#!/usr/bin/env bash
# The studio in a browser: the web server (HTTP + websockets) and one Celery
# worker, talking through Redis. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export STUDIO_REDIS_URL="${STUDIO_REDIS_URL:-redis://127.0.0.1:6379/0}"
export STUDIO_DEBUG="${STUDIO_DEBUG:-1}"
scripts/ensure_services.sh redis

.venv/bin/celery -A studio_site worker -Q cpu,io --concurrency "${STUDIO_WORKER_CONCURRENCY:-2}" \
    --loglevel INFO &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM

echo "Studio at http://127.0.0.1:${STUDIO_PORT:-8000}/ (create a user with: .venv/bin/python manage.py createsuperuser)"
.venv/bin/python manage.py runserver "127.0.0.1:${STUDIO_PORT:-8000}"
