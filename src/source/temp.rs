//! Temperatures: thermal zones (`/sys/class/thermal/thermal_zone*/{type,temp}`) and hwmon
//! sensors (`/sys/class/hwmon/hwmon*/{name,temp*_input,temp*_label}`), in millidegrees.
//!
//! The inputs are found once, when the sampler is built (a directory scan allocates); each
//! cycle then only reads the files found. A sensor that appears later (a USB modem's hwmon)
//! is picked up at the next config reload.

use std::path::{Path, PathBuf};

use crate::limits::{MAX_DIM_VALUE_LEN, MAX_TEMP_INPUTS};
use crate::metric::DimValue;

/// One temperature file and the series it feeds.
#[derive(Clone, Debug, PartialEq)]
pub struct TempInput {
    /// `type` for a thermal zone, `sensor` for hwmon.
    pub key: &'static str,
    /// The zone's type, or the sensor's label (`<hwmon name>/tempN` without one).
    pub dim: DimValue,
    /// The file holding millidegrees.
    pub path: PathBuf,
}

/// Parses a sysfs temperature (`45678\n`, millidegrees Celsius) into degrees.
pub fn parse_millidegrees(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?.trim();
    let milli: i64 = s.parse().ok()?;
    Some(milli as f64 / 1000.0)
}

/// Finds the thermal zones and hwmon temperature inputs under `root`, zones first, each
/// group in name order (`thermal_zone2` before `thermal_zone10`), at most
/// [`MAX_TEMP_INPUTS`]. A dimension value seen before gets the zone or hwmon directory
/// appended (`cpu-thermal/thermal_zone1`) so that two inputs never share a series.
pub fn discover(root: &Path) -> Vec<TempInput> {
    let mut out: Vec<TempInput> = Vec::new();
    let thermal = root.join("sys/class/thermal");
    for zone in sorted_entries(&thermal, "thermal_zone") {
        let dir = thermal.join(&zone);
        let Some(kind) = read_line(&dir.join("type")) else {
            continue;
        };
        add(&mut out, "type", &kind, &zone, dir.join("temp"));
    }
    let hwmon = root.join("sys/class/hwmon");
    for mon in sorted_entries(&hwmon, "hwmon") {
        let dir = hwmon.join(&mon);
        let name = read_line(&dir.join("name")).unwrap_or_else(|| mon.clone());
        for input in sorted_entries(&dir, "temp") {
            let Some(n) = input
                .strip_prefix("temp")
                .and_then(|s| s.strip_suffix("_input"))
            else {
                continue;
            };
            let label = read_line(&dir.join(format!("temp{n}_label")))
                .unwrap_or_else(|| format!("{name}/temp{n}"));
            add(&mut out, "sensor", &label, &mon, dir.join(&input));
        }
    }
    out.truncate(MAX_TEMP_INPUTS);
    out
}

fn add(out: &mut Vec<TempInput>, key: &'static str, dim: &str, dir: &str, path: PathBuf) {
    let taken = |d: &str| out.iter().any(|t| t.key == key && t.dim == d);
    let unique = if taken(dim) {
        format!("{dim}/{dir}")
    } else {
        dim.to_string()
    };
    if unique.len() > MAX_DIM_VALUE_LEN || taken(&unique) {
        return;
    }
    if let Ok(dim) = DimValue::try_from(unique.as_str()) {
        out.push(TempInput { key, dim, path });
    }
}

/// Longest `type`, `name` or `temp*_label` file read.
const LABEL_FILE_LEN: u64 = 256;

/// The first line of a small text file (a regular file: see [`super::open_source`]; at
/// most [`LABEL_FILE_LEN`] bytes of it), trimmed; None when missing, empty or not UTF-8.
fn read_line(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let file = super::open_source(path, super::Link::Refuse).ok()?;
    let mut text = String::new();
    file.take(LABEL_FILE_LEN).read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Names in `dir` starting with `prefix`, sorted by their numeric part where there is one.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort_by_key(|n| {
        let digits: String = n[prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (digits.parse::<u64>().unwrap_or(u64::MAX), n.clone())
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millidegrees() {
        assert_eq!(parse_millidegrees(b"45678\n"), Some(45.678));
        assert_eq!(parse_millidegrees(b"-5000\n"), Some(-5.0));
        assert_eq!(parse_millidegrees(b""), None);
        assert_eq!(parse_millidegrees(b"45.6"), None);
        assert_eq!(parse_millidegrees(b"\xff"), None);
    }
}
