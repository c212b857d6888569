#!/usr/bin/env bash
# Installs the Debian packages lightctl's tests and tools need, then makes sure the shared Mosquitto
# on 127.0.0.1:1883 runs, and PostgreSQL on 127.0.0.1:5432 if it is installed (machines of this kind
# come with it; the state-database tests each create a schema of their own in it). Idempotent: when
# everything is present it only checks and exits.
#
# Without root or apt-get it warns and exits 0 so a developer can still run the tests that need no
# server (the others skip loudly); under CI=true a missing package is an error, because a CI run
# that silently skips the server tests proves nothing.
set -euo pipefail

PACKAGES=(mosquitto mosquitto-clients victoria-metrics influxdb chromium fonts-noto-cjk mbpoll)
MQTT_HOST=127.0.0.1
MQTT_PORT=1883
MOSQUITTO_CONF=/etc/mosquitto/mosquitto.conf
PG_HOST=127.0.0.1
PG_PORT=5432

is_installed() {
    # `dpkg -s` also succeeds for removed packages whose config files remain, so read the state.
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

loud() {
    local line='!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
    printf '\n%s\n' "$line" >&2
    printf '!!! %s\n' "$@" >&2
    printf '%s\n\n' "$line" >&2
}

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! command -v dpkg-query >/dev/null 2>&1 || ! is_installed "$pkg"; then
            printf '%s\n' "$pkg"
        fi
    done
}

mqtt_listening() {
    (exec 3<>"/dev/tcp/$MQTT_HOST/$MQTT_PORT") 2>/dev/null
}

install_packages() {
    local policy=/usr/sbin/policy-rc.d
    local own_policy=0
    # Debian's influxdb and victoria-metrics would start system services bound to every interface
    # (influxd also phones home for usage reporting by default). Tests start their own loopback
    # instances, so keep the packaged services from starting during installation.
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
    if ((own_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi
}

ensure_shared_mosquitto() {
    if mqtt_listening; then
        echo "Mosquitto already listens on $MQTT_HOST:$MQTT_PORT"
        return 0
    fi
    if ! command -v mosquitto >/dev/null 2>&1 && [[ ! -x /usr/sbin/mosquitto ]]; then
        loud "mosquitto is not installed: nothing listens on $MQTT_HOST:$MQTT_PORT" \
            "tests will fall back to the embedded amqtt broker (MQTT 3.1.1 only)"
        return 0
    fi
    local bin
    bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    # The packaged config writes its pid to /run/mosquitto, which a fresh container lacks.
    if [[ $EUID -eq 0 ]] && id mosquitto >/dev/null 2>&1; then
        install -d -o mosquitto -g mosquitto /run/mosquitto /var/log/mosquitto /var/lib/mosquitto
    fi
    echo "Starting the shared Mosquitto: $bin -d -c $MOSQUITTO_CONF"
    "$bin" -d -c "$MOSQUITTO_CONF" || true
    local _
    for _ in $(seq 50); do
        mqtt_listening && { echo "Mosquitto listens on $MQTT_HOST:$MQTT_PORT"; return 0; }
        sleep 0.1
    done
    loud "could not start Mosquitto on $MQTT_HOST:$MQTT_PORT (see /var/log/mosquitto/mosquitto.log)"
    return 1
}

pg_listening() {
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
}

ensure_postgresql() {
    if pg_listening; then
        echo "PostgreSQL already listens on $PG_HOST:$PG_PORT"
        return 0
    fi
    local ci_status=0
    [[ "${CI:-}" == "true" ]] && ci_status=1
    if ! command -v pg_lsclusters >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        loud "PostgreSQL is not installed: nothing listens on $PG_HOST:$PG_PORT" \
            "the PostgreSQL state-database tests will be SKIPPED (or FAIL under CI=true)" \
            "install it with: sudo apt-get install postgresql"
        return "$ci_status"
    fi
    if [[ $EUID -ne 0 ]]; then
        loud "PostgreSQL is installed but not running on $PG_HOST:$PG_PORT; starting it needs root" \
            "run: sudo $0"
        return "$ci_status"
    fi
    local version cluster port status _ started=0
    while read -r version cluster port status _; do
        [[ "$port" == "$PG_PORT" && "$status" == down* ]] || continue
        # Started by hand, not through systemd (containers have none), and bound to loopback only
        # for this run whatever postgresql.conf says; the configuration files are left untouched.
        echo "Starting PostgreSQL $version/$cluster on $PG_HOST:$PG_PORT"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start -- \
            -o "-c listen_addresses=$PG_HOST" || true
        started=1
    done < <(pg_lsclusters --no-header 2>/dev/null || true)
    if ((started == 0)); then
        loud "no PostgreSQL cluster on port $PG_PORT to start (see pg_lsclusters)" \
            "the PostgreSQL state-database tests will be SKIPPED (or FAIL under CI=true)"
        return "$ci_status"
    fi
    for _ in $(seq 100); do
        pg_listening && { echo "PostgreSQL listens on $PG_HOST:$PG_PORT"; return 0; }
        sleep 0.1
    done
    loud "could not start PostgreSQL on $PG_HOST:$PG_PORT (see /var/log/postgresql/)"
    return 1
}

main() {
    local missing=()
    mapfile -t missing < <(missing_packages)
    local status=0

    if ((${#missing[@]} == 0)); then
        echo "System packages present: ${PACKAGES[*]}"
    elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing: ${missing[*]}"
        install_packages "${missing[@]}"
    else
        local why="not root"
        command -v apt-get >/dev/null 2>&1 || why="no apt-get"
        loud "MISSING SYSTEM PACKAGES ($why): ${missing[*]}" \
            "install them with: sudo apt-get install ${missing[*]}" \
            "tests that need these servers will be SKIPPED (or FAIL under CI=true)"
        [[ "${CI:-}" == "true" ]] && status=1
    fi

    ensure_shared_mosquitto || status=1
    ensure_postgresql || status=1
    return "$status"
}

main "$@"
