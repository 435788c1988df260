//! Every capacity tocsin has, named once.
//!
//! A config that would exceed one of these is rejected at load time (`tocsin check`),
//! so nothing overflows at run time.

/// Most `[[rule]]` tables in one config.
pub const MAX_RULES: usize = 64;
/// Most `[[webhook]]` tables in one config.
pub const MAX_WEBHOOKS: usize = 16;
/// Most webhook names in one rule's `notify`.
pub const MAX_NOTIFY: usize = 8;
/// Longest rule or webhook name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest value of one dimension (a mount point, an interface name, …), in bytes.
pub const MAX_DIM_VALUE_LEN: usize = 96;
/// Most samples one sampling cycle produces (all metrics, all dimensions).
pub const MAX_SAMPLES: usize = 256;
/// Most mounted filesystems sampled for `disk.*`.
pub const MAX_MOUNTS: usize = 32;
/// Most series (distinct dimension values) one rule tracks.
pub const MAX_SERIES_PER_RULE: usize = 16;
// One evaluation cycle produces at most one event per series: MAX_RULES ×
// MAX_SERIES_PER_RULE. There is no separate per-cycle cap: an outbox takes them
// (OUTBOX_CAPACITY in memory, the rest to the spool), so a cap would only drop events.
/// Largest `times` / `within` / `clear_times` / `no_data_after`.
pub const MAX_TIMES: u8 = 64;
/// Longest URL, in bytes.
pub const MAX_URL_LEN: usize = 512;
/// Most custom headers on one webhook.
pub const MAX_HEADERS: usize = 16;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 512;
/// Largest rendered request body, in bytes (the fixed render buffer).
pub const MAX_BODY_LEN: usize = 4096;
/// Events waiting in one webhook's in-memory outbox.
pub const OUTBOX_CAPACITY: usize = 64;
/// Most fleet labels.
pub const MAX_LABELS: usize = 16;
/// Largest file tocsin reads from /proc or /sys in one piece, in bytes.
pub const MAX_PROC_FILE_LEN: usize = 64 * 1024;
/// Largest config file, in bytes.
pub const MAX_CONFIG_LEN: usize = 256 * 1024;
/// Largest response body read (and discarded) from a receiver, in bytes.
pub const MAX_RESPONSE_BODY_LEN: usize = 64 * 1024;
/// Most retries one webhook may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Shortest accepted duration, in milliseconds.
pub const MIN_DURATION_MS: u64 = 100;
/// Longest accepted duration (7 days), in milliseconds.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most network interfaces tracked for `net.*` (rates need the previous counters).
pub const MAX_IFACES: usize = 32;
/// Most temperature inputs (thermal zones plus hwmon sensors) found at load.
pub const MAX_TEMP_INPUTS: usize = 32;
/// Most processes one `process.*` rule tracks for `process.cpu_percent`; further matching
/// processes are counted but their CPU time is not.
pub const MAX_PIDS_PER_PROCESS_RULE: usize = 128;
/// Bytes of `getdents64` records read from /proc at a time while looking for processes.
pub const DIR_BUF_LEN: usize = 8 * 1024;
/// Most bytes of an `exec.value` command's stdout; a command printing more yields no sample.
pub const MAX_EXEC_OUTPUT: usize = 4 * 1024;
/// Default bound on a `tcp.up` connect, in milliseconds.
pub const DEFAULT_TCP_TIMEOUT_MS: u64 = 1000;
/// Default bound on an `exec.value` command, in milliseconds.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 2000;
/// Longest `timeout` a `tcp.up` or `exec.value` rule may set, in milliseconds: a probe
/// worker waits for it (the sampling tick does not).
pub const MAX_PROBE_TIMEOUT_MS: u64 = 30_000;
/// Worker threads that run the slow probes (`tcp.up`, `exec.value`, statvfs of network and
/// FUSE mounts) off the sampling tick: started on demand, at most this many per process,
/// never ended. Each has at most one `exec.value` child, so probes add at most 2 × this to
/// the tasks the unit's `TasksMax=64` counts (plus whatever a command forks itself).
pub const MAX_PROBE_WORKERS: usize = 4;
/// Threads of the runtime's blocking pool: spool writes (each with its fsync) and host
/// name resolution of webhooks run there, off the event loop. With the probe workers and
/// their children the agent stays far below the unit's `TasksMax=64`.
pub const MAX_BLOCKING_THREADS: usize = 4;
/// Probe runs waiting for a worker, for the whole process (two configs' worth during a
/// reload). A run that finds the queue full is tried again at the next tick.
pub const PROBE_QUEUE_LEN: usize = 2 * (MAX_RULES + MAX_MOUNTS);
/// A statvfs of a network or FUSE mount not back after this long is logged, once, as
/// hanging (a dead server); it keeps its worker until it returns, and the mount has no
/// `disk.*` sample meanwhile. Statvfs calls take at most `MAX_PROBE_WORKERS` − 1 workers,
/// so `tcp.up` and `exec.value` always keep one.
pub const STATFS_HANG_MS: u64 = 5_000;
/// Longest comm the kernel keeps for a process name (`TASK_COMM_LEN` − 1), in bytes.
pub const MAX_COMM_LEN: usize = 15;
/// Most peers (`urls`) of one Alertmanager cluster.
pub const MAX_AM_PEERS: usize = 5;
/// Most alerts one `alertmanager` webhook tracks at once (firing, and resolved ones still
/// being re-sent). Allocated when the webhook starts, never grown.
pub const MAX_AM_ALERTS: usize = 256;
/// Largest `max_batch` (alerts in one Alertmanager request).
pub const MAX_BATCH: usize = 256;
/// Default `max_batch`.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Default `resend` of firing alerts to Alertmanager (Prometheus' `resend-delay`), in ms.
pub const DEFAULT_RESEND_MS: u64 = 60_000;
/// Largest Alertmanager request body, in bytes: one per peer, allocated at start. A batch
/// holds as many due alerts as fit; one alert always fits (proved at load).
pub const MAX_AM_BODY_LEN: usize = 16 * 1024;
/// Most files one `[agent] include` may bring in.
pub const MAX_INCLUDES: usize = 64;
