//! The firing-state file (`state_dir/firing`), read back at start after a power cut.
//! Input, first byte even: the file's bytes, sealed with a right checksum unless the
//! second byte is 0. First byte odd: a hostile set built from the rest, encoded.
//! Invariants: decoding allocates within the file format's own bounds, whatever counts
//! the file claims; what decodes re-encodes to bytes that decode to the same set, and
//! encoding is a fixed point; an encoded set always decodes to itself.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tocsin::event::{EventId, Name};
use tocsin::limits::{MAX_NAME_LEN, MAX_NOTIFY};
use tocsin::metric::Metric;
use tocsin::rule::{AlertState, Level};
use tocsin::service::firing::{
    decode, encode, Delivered, Entry, FiringSet, Hook, MAX_ENTRIES, MAX_HOOKS,
};
use tocsin_fuzz::{dim, event, hex, measure, sealed, text};

fn state(u: &mut Unstructured<'_>) -> Result<AlertState> {
    Ok(*u.choose(&[
        AlertState::Ok,
        AlertState::Alert,
        AlertState::InsufficientData,
    ])?)
}

fn level(u: &mut Unstructured<'_>) -> Result<Level> {
    Ok(*u.choose(&[Level::Info, Level::Warn, Level::Critical])?)
}

fn set(u: &mut Unstructured<'_>) -> Result<FiringSet> {
    let device_id: heapless::String<MAX_NAME_LEN> = text(u)?;
    let mut entries = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let metric = *u.choose(&Metric::ALL)?;
        let key = match metric.dimensions() {
            [] => None,
            keys => Some(*u.choose(keys)?),
        };
        let mut notify: Vec<Name> = Vec::new();
        for _ in 0..u.int_in_range(0..=MAX_NOTIFY)? {
            notify.push(text(u)?);
        }
        let mut hooks = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            let delivered = if u.arbitrary()? {
                Some(Delivered {
                    state: state(u)?,
                    level: level(u)?,
                    id: EventId(u.arbitrary()?),
                })
            } else {
                None
            };
            hooks.push(Hook {
                webhook: text(u)?,
                delivered,
                last: event(u)?,
            });
        }
        entries.push(Entry {
            rule_name: text(u)?,
            metric,
            key,
            dim: dim(u)?,
            state: state(u)?,
            level: level(u)?,
            first_ms: u.arbitrary()?,
            last_ms: u.arbitrary()?,
            times: u.arbitrary()?,
            notified_ms: u.arbitrary()?,
            notify,
            hooks,
        });
    }
    Ok(FiringSet {
        device_id: device_id.as_str().to_owned(),
        entries,
    })
}

/// The most a decoder may hold for one file: every entry the format allows, each with
/// its most `notify` names and webhooks, plus the text.
fn bound(len: usize) -> usize {
    let entry = std::mem::size_of::<Entry>()
        + MAX_NOTIFY * std::mem::size_of::<Name>()
        + MAX_HOOKS * std::mem::size_of::<Hook>();
    MAX_ENTRIES * entry + 2 * len + 1024
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        match rest.split_first() {
            Some((0, raw)) => raw.to_vec(),
            _ => sealed(rest.get(1..).unwrap_or_default()),
        }
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(s) = set(&mut u) else {
            return;
        };
        let b = encode(&s);
        let back = decode(&b).unwrap_or_else(|| panic!("encoded set does not decode: {s:?}"));
        assert_eq!(format!("{back:?}"), format!("{s:?}"), "round trip");
        b
    };
    let (got, a) = measure(|| decode(&bytes));
    assert!(
        a.peak <= bound(bytes.len()),
        "decode held {a:?} for {} bytes: {}",
        bytes.len(),
        hex(&bytes[..bytes.len().min(256)])
    );
    let Some(s) = got else {
        return;
    };
    let again = encode(&s);
    let s2 = decode(&again).unwrap_or_else(|| panic!("re-encoded set does not decode: {s:?}"));
    assert_eq!(format!("{s2:?}"), format!("{s:?}"));
    assert_eq!(encode(&s2), again, "encoding is not a fixed point");
});
