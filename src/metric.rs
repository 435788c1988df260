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
    /// Temperature in °C of a thermal zone (dimension `type`) or hwmon sensor (`sensor`).
    TempCelsius,
    /// 1 when an interface is up (operstate `up`, or carrier 1 when operstate is `unknown`).
    NetUp,
    /// Received bits per second (dimension `iface`).
    NetRxBps,
    /// Transmitted bits per second.
    NetTxBps,
    /// Receive errors per second.
    NetRxErrors,
    /// Dropped packets (receive + transmit) per second.
    NetDrops,
    /// 100 × nf_conntrack_count / nf_conntrack_max.
    ConntrackUsed,
    /// Number of processes matching a name glob or a pidfile (dimension `name` or `pidfile`).
    ProcessCount,
    /// 1 when at least one matching process runs, else 0.
    ProcessUp,
    /// Sum of the matching processes' resident set sizes, in bytes.
    ProcessRss,
    /// CPU time of the matching processes between two samples, in percent of one CPU.
    ProcessCpu,
    /// 1 when a TCP connect to `target` succeeds within the timeout, else 0.
    TcpUp,
    /// A number read from a file, times `scale` (dimension `path`).
    FileValue,
    /// The number a command prints on stdout (dimension `command`).
    ExecValue,
}

impl Metric {
    /// All metrics, in the order `tocsin once --metrics` lists them.
    pub const ALL: [Metric; 25] = [
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
        Metric::TempCelsius,
        Metric::NetUp,
        Metric::NetRxBps,
        Metric::NetTxBps,
        Metric::NetRxErrors,
        Metric::NetDrops,
        Metric::ConntrackUsed,
        Metric::ProcessCount,
        Metric::ProcessUp,
        Metric::ProcessRss,
        Metric::ProcessCpu,
        Metric::TcpUp,
        Metric::FileValue,
        Metric::ExecValue,
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
            Metric::TempCelsius => "temp.celsius",
            Metric::NetUp => "net.up",
            Metric::NetRxBps => "net.rx_bps",
            Metric::NetTxBps => "net.tx_bps",
            Metric::NetRxErrors => "net.rx_errors_per_s",
            Metric::NetDrops => "net.drops_per_s",
            Metric::ConntrackUsed => "conntrack.used_percent",
            Metric::ProcessCount => "process.count",
            Metric::ProcessUp => "process.up",
            Metric::ProcessRss => "process.rss_bytes",
            Metric::ProcessCpu => "process.cpu_percent",
            Metric::TcpUp => "tcp.up",
            Metric::FileValue => "file.value",
            Metric::ExecValue => "exec.value",
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
            | Metric::DiskInodesUsed
            | Metric::ConntrackUsed
            | Metric::ProcessCpu => "%",
            Metric::Load1
            | Metric::Load5
            | Metric::Load15
            | Metric::NetUp
            | Metric::ProcessCount
            | Metric::ProcessUp
            | Metric::TcpUp
            | Metric::FileValue
            | Metric::ExecValue => "",
            Metric::MemAvailable | Metric::ProcessRss => "bytes",
            Metric::Uptime => "s",
            Metric::TempCelsius => "°C",
            Metric::NetRxBps | Metric::NetTxBps => "bit/s",
            Metric::NetRxErrors | Metric::NetDrops => "/s",
        }
    }

    /// The dimension keys this metric's samples may carry, the usual one first
    /// (`match = { mount = "/" }`). Most metrics have at most one; `temp.celsius` has
    /// `type` (thermal zones) and `sensor` (hwmon), processes `name` and `pidfile`.
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Metric::DiskUsed | Metric::DiskInodesUsed => &["mount"],
            Metric::TempCelsius => &["type", "sensor"],
            Metric::NetUp
            | Metric::NetRxBps
            | Metric::NetTxBps
            | Metric::NetRxErrors
            | Metric::NetDrops => &["iface"],
            Metric::ProcessCount | Metric::ProcessUp | Metric::ProcessRss | Metric::ProcessCpu => {
                &["name", "pidfile"]
            }
            Metric::TcpUp => &["target"],
            Metric::FileValue => &["path"],
            Metric::ExecValue => &["command"],
            _ => &[],
        }
    }

    /// The usual dimension key, if the metric has any.
    pub fn dimension(self) -> Option<&'static str> {
        self.dimensions().first().copied()
    }

    /// The dimension key `key` as this metric's own `'static` spelling, if it has it.
    pub fn dimension_key(self, key: &str) -> Option<&'static str> {
        self.dimensions().iter().copied().find(|&k| k == key)
    }
}

/// A dimension value: a mount point, an interface name, … (empty for metrics without one).
pub type DimValue = heapless::String<MAX_DIM_VALUE_LEN>;

/// One measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// What was measured.
    pub metric: Metric,
    /// Which of the metric's [`Metric::dimensions`] `dim` is the value of (`None` when it has none).
    pub key: Option<&'static str>,
    /// The value of the dimension (empty when it has none).
    pub dim: DimValue,
    /// The measured value, finite.
    pub value: f64,
}

/// The samples of one cycle.
pub type Samples = heapless::Vec<Sample, MAX_SAMPLES>;
