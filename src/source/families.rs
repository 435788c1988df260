//! Which host-wide files a cycle reads.

use crate::metric::Metric;

/// The host-wide families a [`Sampler`](super::Sampler) reads each cycle, one bit per group of files: a
/// cycle reads only what the loaded rules use (plus `uptime`, from which the agent tells
/// a reboot under it), so three rules on CPU, memory and `/` do not pay for
/// `/proc/net/dev`, every interface's link files, conntrack and the thermal zones.
/// Processes, `file.value`, `tcp.up` and `exec.value` are sampled per rule already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families(u8);

impl Families {
    /// No host-wide family.
    pub const NONE: Families = Families(0);
    /// `/proc/stat`: `cpu.*`.
    pub const CPU: Families = Families(1);
    /// `/proc/loadavg`: `load.*`.
    pub const LOAD: Families = Families(1 << 1);
    /// `/proc/meminfo`: `mem.*`, `swap.*`.
    pub const MEM: Families = Families(1 << 2);
    /// `/proc/uptime`: `uptime.seconds`.
    pub const UPTIME: Families = Families(1 << 3);
    /// The mounts file and statvfs of each mount: `disk.*`.
    pub const DISK: Families = Families(1 << 4);
    /// Thermal zones and hwmon sensors: `temp.celsius`.
    pub const TEMP: Families = Families(1 << 5);
    /// `/proc/net/dev` and each interface's link files: `net.*`.
    pub const NET: Families = Families(1 << 6);
    /// The two conntrack files: `conntrack.used_percent`.
    pub const CONNTRACK: Families = Families(1 << 7);
    /// Every family: `tocsin once --metrics` lists them all.
    pub const ALL: Families = Families(u8::MAX);

    /// The family whose files give `metric` (none for the per-rule probes).
    pub fn of(metric: Metric) -> Families {
        match metric {
            Metric::CpuUsage | Metric::CpuIowait => Families::CPU,
            Metric::Load1 | Metric::Load5 | Metric::Load15 => Families::LOAD,
            Metric::MemUsed | Metric::MemAvailable | Metric::SwapUsed => Families::MEM,
            Metric::Uptime => Families::UPTIME,
            Metric::DiskUsed | Metric::DiskInodesUsed => Families::DISK,
            Metric::TempCelsius => Families::TEMP,
            Metric::NetUp
            | Metric::NetRxBps
            | Metric::NetTxBps
            | Metric::NetRxErrors
            | Metric::NetDrops => Families::NET,
            Metric::ConntrackUsed => Families::CONNTRACK,
            Metric::ProcessCount
            | Metric::ProcessUp
            | Metric::ProcessRss
            | Metric::ProcessCpu
            | Metric::TcpUp
            | Metric::FileValue
            | Metric::ExecValue => Families::NONE,
        }
    }

    /// The families of these metrics.
    pub fn of_all(metrics: impl IntoIterator<Item = Metric>) -> Families {
        metrics
            .into_iter()
            .fold(Families::NONE, |f, m| f | Families::of(m))
    }

    /// Whether every family of `other` is in `self`.
    pub fn contains(self, other: Families) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Families {
    type Output = Families;
    fn bitor(self, rhs: Families) -> Families {
        Families(self.0 | rhs.0)
    }
}
