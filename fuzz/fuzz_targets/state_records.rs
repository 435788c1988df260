//! The small records of `state_dir`, found on flash after a power cut: the first byte
//! picks one, the rest is the file. 0 `boot` (the boot id tocsin ran under), 1
//! `lkg.current` (the last-known-good pointer), 2 `mutes` (sealed with a right checksum
//! unless the next byte is 0, so that mutated input reaches past it).
//! Invariants: what decodes re-encodes to bytes that decode to the same record; an
//! encoded record always decodes; allocation in proportion to the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::service::boot;
use tocsin::service::mute;
use tocsin::service::{decode_pointer, encode_pointer};
use tocsin_fuzz::{measure, sealed};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let (r, a) = measure(|| boot::decode(bytes));
            assert!(a.peak <= 2 * bytes.len() + 64, "{a:?}");
            if let Some(r) = r {
                assert!(!r.id.is_empty() && r.id.len() <= 64, "{r:?}");
                let again = boot::encode(&r);
                assert_eq!(boot::decode(&again).as_ref(), Some(&r), "{again:?}");
            }
        }
        2 => {
            let file = match bytes.split_first() {
                Some((0, raw)) => raw.to_vec(),
                _ => sealed(bytes.get(1..).unwrap_or_default()),
            };
            let (m, a) = measure(|| mute::decode(&file));
            // Within the format's own bound (the most mutes it holds), whatever count
            // the file claims.
            let most = mute::MAX_MUTES * std::mem::size_of::<mute::Stored>();
            assert!(a.peak <= most + 2 * file.len() + 64, "{a:?}");
            if let Ok(m) = m {
                let again = mute::encode(&m);
                assert_eq!(mute::decode(&again), Ok(m), "{again:?}");
            }
        }
        _ => {
            let (n, a) = measure(|| decode_pointer(bytes));
            assert!(a.peak <= 2 * bytes.len() + 64, "{a:?}");
            if let Some(n) = n {
                assert!(n > 0);
                assert_eq!(decode_pointer(&encode_pointer(n)), Some(n));
                // One spelling per generation: no sign, no leading zero.
                assert_eq!(
                    encode_pointer(n),
                    bytes,
                    "{:?}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
});
