# Shared by the cross/ scripts (sourced, not run): the target list, cache paths and the
# toolchain pin. Each script sets `set -euo pipefail` itself before sourcing this.

CROSS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$CROSS_DIR")"
# Everything built by cross/setup (soft-float musl, libunwind, wrappers) lives here.
CROSS_CACHE="${TOCSIN_CROSS_CACHE:-$REPO_DIR/target/cross-cache}"
# The nightly used for -Zbuild-std. cross/nightly holds the version it was tested with.
NIGHTLY="${TOCSIN_NIGHTLY:-nightly}"

# Prints the target triples, or only $1 if given (and known).
cross_targets() {
    local want="${1:-}" found=0 t
    while read -r t _; do
        if [ -z "$want" ] || [ "$want" = "$t" ]; then
            echo "$t"
            found=1
        fi
    done < <(grep -v '^[[:space:]]*\(#\|$\)' "$CROSS_DIR/targets")
    if [ "$found" = 0 ]; then
        echo "unknown target: $want (see cross/targets)" >&2
        return 1
    fi
}

# `rustup` or `build-std` for target $1.
cross_std() {
    awk -v t="$1" '$1 == t { print $2 }' "$CROSS_DIR/targets"
}

# The run command for target $1 (`native` or a qemu-user command with its options).
cross_runner() {
    awk -v t="$1" '$1 == t { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' "$CROSS_DIR/targets"
}

# Where cross/build leaves the binary for target $1.
cross_bin() {
    echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}/$1/release/tocsin"
}
