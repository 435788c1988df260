//! Metric names, their dimensions, and the samples sources produce.

use crate::limits::{MAX_DIM_VALUE_LEN, MAX_SAMPLES};

/// Every metric this build can sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Busy share of all CPU time between two samples, in percent (/proc/stat).
    CpuUsage,
    /// I/O-wait share of all CPU time between two samples, in percent (/proc/stat).
    CpuIowait,
    /// One-minute load average (/proc/loadavg).
    Load1,
    /// Five-minute load average.
    Load5,
    /// Fifteen-minute load average.
    Load15,
    /// 100 × (MemTotal − MemAvailable) / MemTotal (/proc/meminfo).
    MemUsed,
    /// MemAvailable in bytes.
    MemAvailable,
    /// 100 × (SwapTotal − SwapFree) / SwapTotal; no sample without swap.
    SwapUsed,
    /// Block usage of a mounted filesystem in percent, as `df` computes it (dimension `mount`).
    DiskUsed,
    /// Inode usage of a mounted filesystem in percent (dimension `mount`).
    DiskInodesUsed,
    /// Seconds since boot (/proc/uptime).
    Uptime,
}

impl Metric {
    /// All metrics, in the order `tocsin once --metrics` lists them.
    pub const ALL: [Metric; 11] = [
        Metric::CpuUsage,
        Metric::CpuIowait,
        Metric::Load1,
        Metric::Load5,
        Metric::Load15,
        Metric::MemUsed,
        Metric::MemAvailable,
        Metric::SwapUsed,
        Metric::DiskUsed,
        Metric::DiskInodesUsed,
        Metric::Uptime,
    ];

    /// The name used in config (`metric = "cpu.usage_percent"`) and in payloads.
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuUsage => "cpu.usage_percent",
            Metric::CpuIowait => "cpu.iowait_percent",
            Metric::Load1 => "load.1",
            Metric::Load5 => "load.5",
            Metric::Load15 => "load.15",
            Metric::MemUsed => "mem.used_percent",
            Metric::MemAvailable => "mem.available_bytes",
            Metric::SwapUsed => "swap.used_percent",
            Metric::DiskUsed => "disk.used_percent",
            Metric::DiskInodesUsed => "disk.inodes_used_percent",
            Metric::Uptime => "uptime.seconds",
        }
    }

    /// Looks a metric up by its config name.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The unit of the value, for payloads and tables.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::CpuUsage
            | Metric::CpuIowait
            | Metric::MemUsed
            | Metric::SwapUsed
            | Metric::DiskUsed
            | Metric::DiskInodesUsed => "%",
            Metric::Load1 | Metric::Load5 | Metric::Load15 => "",
            Metric::MemAvailable => "bytes",
            Metric::Uptime => "s",
        }
    }

    /// The dimension key this metric's samples carry, if any (`match = { mount = "/" }`).
    pub fn dimension(self) -> Option<&'static str> {
        match self {
            Metric::DiskUsed | Metric::DiskInodesUsed => Some("mount"),
            _ => None,
        }
    }
}

/// Metric names the design lists that this build does not sample yet; `check` names them
/// as "not supported by this build" rather than "unknown".
pub const PLANNED_METRICS: &[&str] = &[
    "temp.celsius",
    "net.up",
    "net.rx_bps",
    "net.tx_bps",
    "net.rx_errors_per_s",
    "net.drops_per_s",
    "conntrack.used_percent",
    "process.count",
    "process.up",
    "process.rss_bytes",
    "process.cpu_percent",
    "tcp.up",
    "file.value",
    "exec.value",
];

/// A dimension value: a mount point, an interface name, … (empty for metrics without one).
pub type DimValue = heapless::String<MAX_DIM_VALUE_LEN>;

/// One measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// What was measured.
    pub metric: Metric,
    /// The value of the metric's dimension (empty when it has none).
    pub dim: DimValue,
    /// The measured value, finite.
    pub value: f64,
}

/// The samples of one cycle.
pub type Samples = heapless::Vec<Sample, MAX_SAMPLES>;
