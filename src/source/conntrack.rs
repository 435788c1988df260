//! `conntrack.used_percent` from `/proc/sys/net/netfilter/nf_conntrack_{count,max}`.
//! A full table drops new connections: the classic "router stops working" failure.

/// 100 × count / max; None when either is missing or max is not positive.
pub fn used_percent(count: Option<f64>, max: Option<f64>) -> Option<f64> {
    let (count, max) = (count?, max?);
    (max > 0.0 && count >= 0.0).then(|| 100.0 * count / max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        assert_eq!(used_percent(Some(512.0), Some(16384.0)), Some(3.125));
        assert_eq!(used_percent(Some(1.0), Some(0.0)), None);
        assert_eq!(used_percent(None, Some(10.0)), None);
        assert_eq!(used_percent(Some(1.0), None), None);
    }
}
