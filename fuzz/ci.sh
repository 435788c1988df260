#!/usr/bin/env bash
# CI fuzz step: installs the nightly cross/nightly names and cargo-fuzz if missing,
# builds every target (with debug assertions, so an overflow is a crash), replays each
# target's seed corpus, then fuzzes each for FUZZ_SECONDS (default 15) with a fixed seed.
# A crash fails the step and prints the artifact's path and the input as a hex dump.
# Time: the runs take about 11 × (FUZZ_SECONDS + 2) s; on top of that come the nightly and
# cargo-fuzz installs (about 1.5 min) and a clean build of the targets (a few minutes on
# 2 cores) on a fresh machine. Lower FUZZ_SECONDS if the 8-minute budget is tight.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$(date +%s)
seconds=${FUZZ_SECONDS:-15}
seed=${FUZZ_SEED:-20261201}

# The nightly cross/build is tested with (cross/nightly holds its `rustc -V`): the
# machine's `nightly` when it is that one, else the dated toolchain that is. A nightly's
# rustc carries its commit date, usually the day before the channel's date.
pinned=$(sed '/^#/d' cross/nightly)
toolchain=${TOCSIN_NIGHTLY:-nightly}
if [ "$(rustup run "$toolchain" rustc -V 2>/dev/null)" != "$pinned" ]; then
    day=$(echo "$pinned" | sed -n 's/.* \([0-9]\{4\}-[0-9][0-9]-[0-9][0-9]\))$/\1/p')
    toolchain=
    for d in "$(date -u -d "$day + 1 day" +%F)" "$day"; do
        rustup toolchain install "nightly-$d" --profile minimal >/dev/null 2>&1 || continue
        if [ "$(rustup run "nightly-$d" rustc -V)" = "$pinned" ]; then
            toolchain=nightly-$d
            break
        fi
    done
    [ -n "$toolchain" ] || { echo "fuzz: no toolchain is '$pinned'" >&2; exit 1; }
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    # C++ for libFuzzer itself.
    if ! command -v c++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq g++ >/dev/null
    fi
    cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "fuzz: $(rustup run "$toolchain" rustc -V), $(cargo fuzz --version)"

cargo "+$toolchain" fuzz build -O -a
echo "fuzz: built in $(($(date +%s) - start)) s"

bin=fuzz/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in $(cargo "+$toolchain" fuzz list); do
    dict=fuzz/dict/http.dict
    [ "$target" = config_check ] && dict=fuzz/dict/toml.dict
    mkdir -p "$work/$target"
    log=$work/$target.log
    t0=$(date +%s)
    # The seeds alone first (-runs=0 runs each input once), then the search, which writes
    # what it finds to a scratch corpus so the repository's seeds stay as they are.
    if "$bin/$target" -runs=0 -artifact_prefix="$work/" fuzz/corpus/"$target" >"$log" 2>&1 &&
        "$bin/$target" -seed="$seed" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -dict="$dict" -artifact_prefix="$work/" -print_final_stats=1 \
            "$work/$target" fuzz/corpus/"$target" >>"$log" 2>&1; then
        stats=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 || true)
        echo "fuzz: $target ok in $(($(date +%s) - t0)) s: ${stats:-}"
    else
        failed=1
        echo "fuzz: $target FAILED; its log:"
        grep -vE '^#[0-9]+' "$log" | tail -60 || true
        for a in "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/leak-*; do
            [ -f "$a" ] || continue
            keep=fuzz/artifacts/$target/$(basename "$a")
            mkdir -p "$(dirname "$keep")"
            cp "$a" "$keep"
            echo "fuzz: $target artifact: $keep ($(wc -c <"$a") bytes); replay with"
            echo "      cargo +nightly fuzz run $target $keep"
            od -A x -t x1z -v "$a" | head -64
            rm -f "$a"
        done
    fi
done
echo "fuzz: took $(($(date +%s) - start)) s"
exit "$failed"
