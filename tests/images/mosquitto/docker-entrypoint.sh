#!/bin/sh
# Started as root: hand all of /mosquitto (config included, as upstream does)
# to the broker's user, which the broker switches to by itself after reading
# its config. What cannot be changed (a read-only mount) is left as it is.
set -e

if [ "$(id -u)" = "0" ] && [ -d /mosquitto ]; then
    chown -R mosquitto:mosquitto /mosquitto 2>/dev/null || true
fi

exec "$@"
