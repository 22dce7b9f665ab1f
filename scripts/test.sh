#!/usr/bin/env bash
# The whole suite against real Postgres and Redis (see DESIGN.md: tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure_services.sh postgres redis

# Style and types first: they take seconds and fail fast.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy

export DATABASE_URL="${STUDIO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export STUDIO_REDIS_URL="${STUDIO_TEST_REDIS_URL:-redis://127.0.0.1:6379/7}"
export STUDIO_DATA_DIR="${STUDIO_DATA_DIR:-$PWD/var/test}"

set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
