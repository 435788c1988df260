#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them
# for the default build and for the smallest one (no TLS).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kill >/dev/null || need_apt+=(procps)
# The "clock not set" test runs the agent under a faked clock.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need_apt+=(faketime)
# tests/suite/alertmanager*.rs and the fleet bench run real Alertmanagers through
# tests/suite/common/am.rs (skipped, loudly, without one; under CI=true that fails).
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
# tests/suite/receivers.rs reads payloads back with independent parsers: Python recomputes
# the cloudmonitor-json signature, Node's JSON.parse reads HertzBeat ids.
command -v python3 >/dev/null || need_apt+=(python3)
command -v node >/dev/null || need_apt+=(nodejs)
# tests/suite/proxy.rs runs a real Squid that requires Basic proxy authentication; its
# password file is made with openssl.
[ -x /usr/sbin/squid ] || need_apt+=(squid)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Packages must not start services on the test machine (Alertmanager's would take
    # port 9093, Squid's 3128): policy-rc.d 101 tells invoke-rc.d not to, for this install only.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" ||
        echo "tests/run.sh: could not install ${need_apt[*]}; the tests that need them will say so (and fail under CI=true)" >&2
fi

echo "== cargo test (default features: tls, builtin-roots)"
cargo test --locked --all-targets
echo "== cargo test --no-default-features (no TLS)"
cargo test --locked --no-default-features --all-targets
echo "== cargo test --features crash-points (restart tests that abort at crash points)"
cargo test --locked --features crash-points --test suite restart::
