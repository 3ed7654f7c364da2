#!/bin/sh
# Started as root: hand the data and log folders to the broker's user, which
# the broker switches to by itself. A read-only mount is left as it is.
set -e

if [ "$(id -u)" = "0" ]; then
    for dir in /mosquitto/data /mosquitto/log; do
        [ -d "$dir" ] && chown -R mosquitto:mosquitto "$dir" 2>/dev/null || true
    done
fi

exec "$@"
