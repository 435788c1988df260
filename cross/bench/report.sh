# cross/bench/report.sh — sourced by `peers` at the end: writes target/bench/peers.md
# (the table, ratios against tocsin) and target/bench/peers.tsv (raw numbers).
# Uses peers' RESULTS, TOOLS, OUT, MODE, WINDOW, CYCLE, START_DATE, LOAD_START/END.

# median of a space-separated list of numbers ("timeout" entries ignored); "-" if none
median() {
    # (grep finds nothing when every trial timed out: not an error here)
    tr ' ' '\n' <<<"$1" | { grep -E '^[0-9.]+$' || true; } | sort -n |
        awk '{v[NR] = $1} END {if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# "VALUE (×R)" with R = value / tocsin's value
ratio() {
    awk -v v="$1" -v b="$2" 'BEGIN {
        if (v == "-" || v == "") { print "-"; exit }
        if (b + 0 > 0) printf "×%.1f", v / b; else print "-" }'
}
mib() { awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'; }
kib_mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
CMD="cross/bench/peers${*:+ $*}"
md="$OUT/peers.md"

declare -A SIZE LINK RSS HWM ANON CPU PER LAT
for t in "${TOOLS[@]}"; do
    SIZE[$t]=0 LINK[$t]=""
    for bin in $(get "$t" binary); do # the Prometheus stack has three
        SIZE[$t]=$((SIZE[$t] + $(stat -c %s "$bin")))
        LINK[$t]+="${LINK[$t]:+ + }$(linkage "$bin")"
    done
    # "a + a + a" reads better as "3 × a"
    LINK[$t]=$(awk -F' [+] ' '{for (i = 2; i <= NF; i++) if ($i != $1) {print; exit}; print (NF > 1 ? NF " × " : "") $1}' <<<"${LINK[$t]}")
    RSS[$t]=$(get "$t" rss_kib)
    HWM[$t]=$(get "$t" hwm_kib)
    ANON[$t]=$(get "$t" anon_kib)
    CPU[$t]=$(get "$t" cpu_s_per_60s)
    posts=$(get "$t" posts)
    PER[$t]=$(awk -v c="$(get "$t" cpu_s)" -v n="$posts" 'BEGIN {if (n > 0) printf "%.2f", c * 1000 / n; else print "-"}')
    LAT[$t]=$(median "$(get "$t" latency_real_ms)")
done

{
    echo "# tocsin and its peers"
    echo
    echo "$START_DATE · \`$CMD\` · mode $MODE · $(nproc) × $(uname -m), $cpu_model"
    echo "· load average (1/5/15 min) $LOAD_START at the start, $LOAD_END at the end (a shared machine)"
    echo
    echo "tocsin is the \`cargo build --release\` binary (glibc) and, when the musl target is installed, the"
    echo "static x86_64-unknown-linux-musl build that routers run; ratios are against the first."
    echo
    echo "Workload, the same for every tool: CPU (> ${CPU_WARN} %), memory and the root filesystem sampled every ${CYCLE} s;"
    echo "the root-filesystem rule (used ≥ 1 %) fires on every cycle, each alert POSTed to one receiver"
    echo "on 127.0.0.1. Each tool runs alone, in turn. Figures after a ${WINDOW} s window."
    echo
    echo "| tool | binary | linkage | RSS (VmRSS / VmHWM) | anonymous (RssAnon) | CPU s per 60 s | POSTs in window | CPU ms per POST | latency, real allocation (ms, median; trials) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    b=tocsin
    for t in "${TOOLS[@]}"; do
        name="$(get "$t" version)"
        [[ $t != tocsin* ]] && name="$name $(awk -v k="$(get "$t" pkg_kib)" 'BEGIN {printf "(installed %.1f MiB", k / 1024}'), $(get "$t" pkg_note))"
        printf '| %s | %s (%s) | %s | %s / %s (%s) | %s (%s) | %s (%s) | %s | %s (%s) | %s (%s; %s) |\n' \
            "$name" \
            "$(mib "${SIZE[$t]}")" "$(ratio "${SIZE[$t]}" "${SIZE[$b]}")" \
            "${LINK[$t]}" \
            "$(kib_mib "${RSS[$t]}")" "$(kib_mib "${HWM[$t]}")" "$(ratio "${RSS[$t]}" "${RSS[$b]}")" \
            "$(kib_mib "${ANON[$t]}")" "$(ratio "${ANON[$t]}" "${ANON[$b]}")" \
            "${CPU[$t]}" "$(ratio "${CPU[$t]}" "${CPU[$b]}")" \
            "$(get "$t" posts)" \
            "${PER[$t]}" "$(ratio "${PER[$t]}" "${PER[$b]}")" \
            "${LAT[$t]}" "$(ratio "${LAT[$t]}" "${LAT[$b]}")" "$(get "$t" latency_real_ms)"
    done
    for t in monit collectd netdata prometheus-stack; do
        m=$(get "$t" missing)
        if [[ -n $m ]]; then echo "| $t | $m | | | | | | | |"; fi
    done
    echo
    echo "tocsin alone:"
    echo
    echo "- latency on a fixture /proc/meminfo rewritten by the script: median $(median "$(get tocsin latency_fixture_ms)") ms at the ${CYCLE} s cycle (trials: $(get tocsin latency_fixture_ms) ms); median $(median "$(get tocsin latency_fixture100_ms)") ms at a 100 ms cycle, where sampling phase hardly counts (trials: $(get tocsin latency_fixture100_ms) ms)"
    echo "- deliveries per second on one kept-alive connection: $(get tocsin burst_per_s)/s ($(get tocsin burst_posts) POSTs in 5 s on $(get tocsin burst_connections) connection(s); 60 rules firing every 100 ms; $(get tocsin burst_cpu_ms_per_post) ms CPU per POST)"
    echo "- spawn to the first alert (\`run --dry-run\`, a rule that fires on the first sample): median $(median "$(get tocsin first_alert_ms)") ms (runs: $(get tocsin first_alert_ms) ms)"
    echo "- heap allocations per cycle: \`cargo test --test alloc -- --nocapture\` (0 for the /proc and /sys sources)"
    echo
    echo "Notes: RSS, anonymous memory (RssAnon: not file pages, which are shared and reclaimable) and CPU are summed over each tool's process tree (the Prometheus row: node_exporter,"
    echo "Prometheus and Alertmanager). CPU is the scheduler's run time of every live thread"
    echo "(/proc/PID/task/TID/schedstat, ns) plus cutime+cstime from /proc/PID/stat, so the sh + curl a"
    echo "hook spawns and the tool reaped is counted. CPU per POST is all CPU in the"
    echo "window (sampling included) over the POSTs delivered. Latency: from the moment the allocating"
    echo "helper has touched 1 GiB past the tool's threshold (set at start from the tool's own formula) to"
    echo "the POST's arrival; with a ${CYCLE} s cycle half a cycle is expected from sampling alone."
    echo "Hardware instruction counters are not available on this VM (perf: <not supported>), so CPU time it is."
    for t in "${TOOLS[@]}"; do
        e=$(get "$t" latency_real_early)
        if [[ ${e:-0} != 0 ]]; then
            echo "$t: $e trial(s) saw a memory alert before the allocation crossed (other builds moved memory);"
            echo "such a trial can time out, the tool being in alarm already."
        fi
    done
} >"$md"
{
    printf 'meta\tdate\t%s\nmeta\tcommand\t%s\nmeta\tmachine\t%s × %s, %s\n' "$START_DATE" "$CMD" "$(nproc)" "$(uname -m)" "$cpu_model"
    printf 'meta\tload_start\t%s\nmeta\tload_end\t%s\nmeta\twindow_s\t%s\n' "$LOAD_START" "$LOAD_END" "$WINDOW"
    cat "$RESULTS"
} >"$OUT/peers.tsv"
log "wrote $md and $OUT/peers.tsv"
cat "$md"
