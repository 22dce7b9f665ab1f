#!/usr/bin/env bash
# Start Postgres and/or Redis when they are installed here but not listening.
#   scripts/ensure_services.sh [postgres] [redis]     (both when none is named)
# Used by `make test` (both), `make serve` (redis) and CI.
set -euo pipefail

wanted="${*:-postgres redis}"

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {
    local name=$1 host=$2 port=$3
    for _ in $(seq 1 60); do
        listening "$host" "$port" && return 0
        sleep 0.5
    done
    echo "error: $name is not listening on $host:$port" >&2
    return 1
}

ensure_postgres() {
if ! listening 127.0.0.1 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
        echo "starting Postgres" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    else
        echo "error: Postgres is not running on 127.0.0.1:5432 and is not installed here;" \
             "install it (Debian: apt-get install postgresql) or set DATABASE_URL" >&2
        exit 1
    fi
fi
wait_for Postgres 127.0.0.1 5432
}

ensure_redis() {
if ! listening 127.0.0.1 6379; then
    if command -v redis-server >/dev/null 2>&1; then
        echo "starting Redis" >&2
        mkdir -p /tmp/studio-redis
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
            --appendonly no --dir /tmp/studio-redis --logfile /tmp/studio-redis/redis.log
    else
        echo "error: Redis is not running on 127.0.0.1:6379 and is not installed here;" \
             "install it (Debian: apt-get install redis-server) or set STUDIO_REDIS_URL" >&2
        exit 1
    fi
fi
wait_for Redis 127.0.0.1 6379
}

for service in $wanted; do
    case "$service" in
        postgres) ensure_postgres ;;
        redis) ensure_redis ;;
        *) echo "error: unknown service $service" >&2; exit 2 ;;
    esac
done
