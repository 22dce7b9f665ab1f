#!/usr/bin/env bash
# The studio in a browser: the web server (HTTP + websockets) and one worker
# (with the reconciler), talking through Redis. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export STUDIO_REDIS_URL="${STUDIO_REDIS_URL:-redis://127.0.0.1:6379/0}"
export STUDIO_DEBUG="${STUDIO_DEBUG:-1}"
scripts/ensure_services.sh redis

# One worker on every queue this machine serves (STUDIO_WORKER_VRAM for a
# GPU), with the periodic reconciler.
.venv/bin/python manage.py worker --beat --concurrency "${STUDIO_WORKER_CONCURRENCY:-2}" &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM

echo "Studio at http://127.0.0.1:${STUDIO_PORT:-8000}/ (create a user with: .venv/bin/python manage.py createsuperuser)"
.venv/bin/python manage.py runserver "127.0.0.1:${STUDIO_PORT:-8000}"
