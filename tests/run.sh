#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them
# for the default build and for the smallest one (no TLS).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kill >/dev/null || need_apt+=(procps)
# The "clock not set" test runs the agent under a faked clock.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need_apt+=(faketime)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

echo "== cargo test (default features: tls, builtin-roots)"
cargo test --locked --all-targets
echo "== cargo test --no-default-features (no TLS)"
cargo test --locked --no-default-features --all-targets
