#!/usr/bin/env bash
# Installs the Debian packages of the real servers the tests start, then makes
# sure none of them keeps running as a system service: the tests start their
# own processes on free ports and need 8086, 1883, 9090 ... left alone.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# needrestart (recommended by docker.io) would otherwise restart daemons.
export NEEDRESTART_SUSPEND=1

packages=(
    victoria-metrics influxdb influxdb-client prometheus mosquitto
    mosquitto-clients nginx docker.io debootstrap docker-registry curl
)
services=(
    nginx mosquitto prometheus prometheus-node-exporter influxdb victoria-metrics
    docker-registry docker
)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

# policy-rc.d answering 101 stops maintainer scripts from starting services
# during the install; an existing one (as in container images) is kept as is.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ${#missing[@]} -gt 0 && ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
restore_policy() {
    if [[ $own_policy -eq 1 ]]; then rm -f "$policy"; fi
}
trap restore_policy EXIT

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "Debian packages already installed"
fi

# Stop and disable whatever the packages may have started. systemctl exists in
# containers without systemd running, so ask systemd itself whether it is up.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    for svc in "${services[@]}"; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
    systemctl disable --now docker.socket >/dev/null 2>&1 || true
else
    # The init scripts stop only the daemons they started (their own pid
    # files), never a server some test started by hand.
    for svc in "${services[@]}"; do
        if [[ -x /etc/init.d/$svc ]]; then
            service "$svc" stop >/dev/null 2>&1 || true
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    done
fi

for tool in victoria-metrics influxd influx prometheus promtool mosquitto \
    mosquitto_pub nginx dockerd debootstrap docker-registry curl; do
    command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done
echo "Debian servers installed, system services stopped"
