#!/bin/bash
# Flags alone mean "influxd with these flags"; influxd gets the one-time init.
set -e

if [ "${1:0:1}" = "-" ]; then
    set -- influxd "$@"
fi

if [ "$1" = "influxd" ]; then
    /init-influxdb.sh "${@:2}"
fi

exec "$@"
