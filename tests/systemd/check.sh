#!/usr/bin/env bash
# Checks the shipped systemd unit, config/tocsin.service:
#   1. `systemd-analyze security --offline=yes` scores it at most 2.0;
#   2. the agent can still read every /proc file and statvfs it needs under the unit's
#      sandbox: where systemd is PID 1 this would be `systemd-run` with the unit's
#      properties; in a container without systemd (this CI machine: PID 1 is not systemd)
#      the filesystem and privilege parts are reproduced with unshare + setpriv
#      (read-only /, private /tmp, read-only /home, an unprivileged uid, no capabilities,
#      no_new_privs) — the seccomp part is checked by 3 instead;
#   3. every system call the agent makes while running (start, HTTP and HTTPS delivery,
#      SIGHUP reload, SIGTERM drain; traced with strace) is allowed by the unit's
#      SystemCallFilter= lines.
# Bounded: every step runs under `timeout`; the receiver stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
unit=config/tocsin.service
max=2.0

# A check that cannot run here says so loudly; under CI=true that is a failure, since CI
# would otherwise pass a check that did not run.
skip() {
    echo "   !!! SKIPPED: $*" >&2
    if [ "${CI:-}" = true ]; then
        echo "   FAIL: a check skipped under CI=true fails" >&2
        exit 1
    fi
}

need=()
# A fresh Debian 12 (a container) has no systemd; its systemd-analyze scores the unit.
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v strace >/dev/null || need+=(strace)
command -v setpriv >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
command -v pgrep >/dev/null || need+=(procps)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== 1. systemd-analyze security --offline=yes $unit ($(systemd-analyze --version | head -1))"
score=$(systemd-analyze security --offline=yes "$unit" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    echo "no score from systemd-analyze" >&2
    exit 1
fi
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    echo "   FAIL: exposure $score > $max"
    systemd-analyze security --offline=yes "$unit" 2>&1 | grep '✗' >&2
    exit 1
fi
echo "   ok: exposure $score (at most $max)"

bin="${TOCSIN_BIN:-target/release/tocsin}"
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d /var/tmp/tocsin-unit.XXXXXX)
receiver_pid=""
cleanup() {
    if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 0755 "$work"
cp "$bin" "$work/tocsin"

echo "== 2. reading /proc and statvfs under the unit's sandbox"
if [ "$(ps -p 1 -o comm=)" = systemd ]; then
    echo "   note: systemd is PID 1 here; systemd-run would test the real sandbox, but this"
    echo "   check reproduces it with unshare + setpriv so it means the same everywhere."
else
    echo "   PID 1 is $(ps -p 1 -o comm=), not systemd: no systemd-run here; reproducing the"
    echo "   filesystem and privilege settings with unshare + setpriv."
fi
cp config/tocsin.toml "$work/tocsin.toml"
chmod 0644 "$work/tocsin.toml"
timeout 60 unshare --mount --propagation private -- sh -c '
    set -e
    mount -o bind,remount,ro /                      # ProtectSystem=strict
    mount -t tmpfs -o mode=1777 tmpfs /tmp          # PrivateTmp=yes
    [ -d /home ] && mount -o bind,ro /home /home    # ProtectHome=read-only
    exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
        --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
        "$1/tocsin" once --metrics -c "$1/tocsin.toml"
' sh "$work" >"$work/metrics.txt" 2>&1 || {
    cat "$work/metrics.txt"
    echo "   FAIL: the agent could not sample under the sandbox"
    exit 1
}
for m in cpu.usage_percent cpu.iowait_percent load.1 load.5 load.15 mem.used_percent \
    mem.available_bytes uptime.seconds 'disk.used_percent +mount=/ ' \
    'disk.inodes_used_percent +mount=/ '; do
    if ! grep -Eq "^$m" "$work/metrics.txt"; then
        cat "$work/metrics.txt"
        echo "   FAIL: no $m as uid 65534 without capabilities on a read-only /"
        exit 1
    fi
done
echo "   ok: every metric family sampled as uid 65534, no capabilities, no_new_privs, read-only /"
# The router sources of later versions (net.*, temp.*) read /sys: prove the same
# sandbox can read what this machine has of it (interfaces here; thermal zones and hwmon
# sensors where the hardware has them).
sys_files=$(ls /sys/class/net/*/operstate /sys/class/net/*/statistics/rx_bytes \
    /sys/class/thermal/thermal_zone*/temp /sys/class/hwmon/hwmon*/temp*_input 2>/dev/null || true)
if [ -n "$sys_files" ]; then
    # shellcheck disable=SC2086 # one argument per file
    timeout 30 unshare --mount --propagation private -- sh -c '
        mount -o bind,remount,ro / &&
        exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
            --inh-caps=-all --ambient-caps=-all --bounding-set=-all cat "$@"
    ' sh $sys_files >/dev/null || {
        echo "   FAIL: /sys unreadable under the sandbox"
        exit 1
    }
    echo "   ok: the same sandbox reads $(echo "$sys_files" | wc -l) files under /sys/class ($(echo "$sys_files" | cut -d/ -f4 | sort -u | xargs))"
else
    skip "no /sys/class/net, thermal zone or hwmon files here: /sys under the sandbox not checked"
fi

echo "== 3. system calls the agent makes vs the unit's SystemCallFilter"
(
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=tocsin unit-check CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext -out cert.pem 2>/dev/null
)
python3 cross/receiver.py "$work/cert.pem" "$work/key.pem" "$work/ports" "$work/received.log" 120 &
receiver_pid=$!
for _ in $(seq 1 50); do
    [ -f "$work/ports" ] && break
    sleep 0.1
done
read -r http_port https_port <"$work/ports"
cat >"$work/strace.toml" <<TOML
[agent]
device_id = "unit-check"
interval  = "200ms"
state_dir = "$work/state"

[[rule]]
name   = "mem-high"
metric = "mem.used_percent"
warn   = "> 0"
notify = ["plain", "tls"]

[[webhook]]
name   = "plain"
url    = "http://127.0.0.1:$http_port/a"
format = "cloudmonitor-json"

[[webhook]]
name   = "tls"
url    = "https://localhost:$https_port/a"
format = "cloudmonitor-json"
tls    = { ca_file = "$work/ca.pem" }
TOML
# NOTIFY_SOCKET names a socket nobody listens on: the sd_notify calls are still made
# (and fail, logged), so their system calls are traced too.
NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=500000 \
    timeout 60 strace -f -qq -o "$work/strace.log" "$work/tocsin" run -c "$work/strace.toml" \
    2>"$work/agent.log" &
tracer=$!
sleep 3
agent=$(pgrep -f "^$work/tocsin run" || true)
[ -n "$agent" ] || { cat "$work/agent.log"; echo "   FAIL: agent did not start"; exit 1; }
kill -HUP "$agent"
sleep 1
kill -TERM "$agent"
wait "$tracer" || { cat "$work/agent.log"; echo "   FAIL: agent did not exit cleanly"; exit 1; }
grep -q '^https POST /a' "$work/received.log" || { echo "   FAIL: no HTTPS delivery"; exit 1; }
grep -q '^http POST /a' "$work/received.log" || { echo "   FAIL: no HTTP delivery"; exit 1; }
python3 tests/systemd/syscalls.py "$unit" "$work/strace.log" | sed 's/^/   /'
