#!/bin/bash
# One-time set-up on an empty /var/lib/influxdb, driven by the same variables
# as the influxdb:1.8 image: INFLUXDB_DB, INFLUXDB_HTTP_AUTH_ENABLED,
# INFLUXDB_ADMIN_USER/_PASSWORD, INFLUXDB_USER/_PASSWORD,
# INFLUXDB_READ_USER/_PASSWORD, INFLUXDB_WRITE_USER/_PASSWORD, and the
# scripts in /docker-entrypoint-initdb.d. Later starts change nothing.
set -euo pipefail

data=/var/lib/influxdb
auth="${INFLUXDB_HTTP_AUTH_ENABLED:-}"
if [ -z "$auth" ] && grep -qiE '^\s*auth-enabled\s*=\s*true' /etc/influxdb/influxdb.conf; then
    auth=true
fi
auth="$(echo "$auth" | tr '[:upper:]' '[:lower:]')"

init_users=""
if [ "$auth" = "true" ] && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; then
    init_users=1
fi
scripts="$(ls -A /docker-entrypoint-initdb.d 2>/dev/null || true)"

if [ -z "$init_users" ] && [ -z "${INFLUXDB_DB:-}" ] && [ -z "$scripts" ]; then
    exit 0
fi
# An existing meta folder means an initialised volume: the variables no
# longer apply.
if [ -d "${INFLUXDB_META_DIR:-$data/meta}" ]; then
    exit 0
fi

port="${INFLUXDB_INIT_PORT:-8086}"
url="http://127.0.0.1:$port"

# Only loopback during set-up, so nobody reaches a half-made server.
INFLUXDB_HTTP_BIND_ADDRESS="127.0.0.1:$port" INFLUXDB_HTTP_HTTPS_ENABLED=false \
    influxd "$@" &
pid=$!

for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$url/ping"; then
        break
    fi
    sleep 0.5
done

query() {
    local credentials=()
    if [ -n "$init_users" ] && [ "${created_admin:-}" = 1 ]; then
        credentials=(-u "$INFLUXDB_ADMIN_USER:$INFLUXDB_ADMIN_PASSWORD")
    fi
    curl -fsS -o /dev/null "${credentials[@]}" -XPOST "$url/query" \
        --data-urlencode "q=$1"
}

if [ -n "$init_users" ]; then
    if [ -z "${INFLUXDB_ADMIN_PASSWORD:-}" ]; then
        INFLUXDB_ADMIN_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
        echo "influxdb init: no INFLUXDB_ADMIN_PASSWORD, set a random one (not shown)"
    fi
    query "CREATE USER \"$INFLUXDB_ADMIN_USER\" WITH PASSWORD '$INFLUXDB_ADMIN_PASSWORD' WITH ALL PRIVILEGES"
    created_admin=1
fi

if [ -n "${INFLUXDB_DB:-}" ]; then
    query "CREATE DATABASE \"$INFLUXDB_DB\""
fi

# user variable prefix and the privilege it gets on INFLUXDB_DB
for kind in USER:ALL READ_USER:READ WRITE_USER:WRITE; do
    var="INFLUXDB_${kind%%:*}"
    user="${!var:-}"
    [ -n "$user" ] || continue
    pass_var="${var}_PASSWORD"
    pass="${!pass_var:-}"
    if [ -z "$pass" ]; then
        pass="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
        echo "influxdb init: no password for $user, set a random one (not shown)"
    fi
    query "CREATE USER \"$user\" WITH PASSWORD '$pass'"
    if [ -n "${INFLUXDB_DB:-}" ]; then
        query "GRANT ${kind##*:} ON \"$INFLUXDB_DB\" TO \"$user\""
    fi
done

for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
        *.sh) echo "influxdb init: running $f"; . "$f" ;;
        *.iql) echo "influxdb init: running $f"
            credentials=()
            if [ -n "$init_users" ]; then
                credentials=(-username "$INFLUXDB_ADMIN_USER" -password "$INFLUXDB_ADMIN_PASSWORD")
            fi
            influx -host 127.0.0.1 -port "$port" "${credentials[@]}" -execute "$(cat "$f")" ;;
        *) ;;
    esac
done

kill "$pid"
wait "$pid" || true
echo "influxdb init: done"
