//! A spool file found on flash after a power cut (`state_dir/spool/WEBHOOK/*.ev`).
//! Input, first byte even: the file's bytes, sealed with a right checksum unless the
//! second byte is 0 (so both torn files and well-formed damage are reached). First byte
//! odd: a hostile event built from the rest, encoded.
//! Invariants: decoding allocates nothing beyond the event's own size; what decodes
//! encodes to bytes that decode to the same event (every field, NaN and -0.0 included),
//! and encoding is a fixed point; an encoded event always decodes.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tocsin::deliver::spool::{decode, encode, format_version};
use tocsin_fuzz::{event, hex, measure, sealed};

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
        let Ok(e) = event(&mut u) else {
            return;
        };
        let b = encode(&e);
        let back = decode(&b).unwrap_or_else(|| panic!("encoded event does not decode: {e:?}"));
        assert_eq!(format!("{back:?}"), format!("{e:?}"), "round trip");
        b
    };
    let (got, a) = measure(|| (decode(&bytes), format_version(&bytes)));
    assert_eq!(a.count, 0, "decode allocated {a:?} for {}", hex(&bytes));
    let (Some(e), version) = got else {
        return;
    };
    assert_eq!(version, Some(1));
    let again = encode(&e);
    let e2 = decode(&again).unwrap_or_else(|| panic!("re-encoded event does not decode: {e:?}"));
    assert_eq!(format!("{e2:?}"), format!("{e:?}"));
    assert_eq!(encode(&e2), again, "encoding is not a fixed point");
});
