//! The small text records of `state_dir`, found on flash after a power cut: the first
//! byte picks one, the rest is the file. 0 `boot` (the boot id tocsin ran under), 1
//! `lkg.current` (the last-known-good pointer). The mute file's decoder, when it lands,
//! belongs here (or in a target of its own if it grows large).
//! Invariants: what decodes re-encodes to bytes that decode to the same record; an
//! encoded record always decodes; allocation in proportion to the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::service::boot;
use tocsin::service::{decode_pointer, encode_pointer};
use tocsin_fuzz::measure;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 2 {
        0 => {
            let (r, a) = measure(|| boot::decode(bytes));
            assert!(a.peak <= 2 * bytes.len() + 64, "{a:?}");
            if let Some(r) = r {
                assert!(!r.id.is_empty() && r.id.len() <= 64, "{r:?}");
                let again = boot::encode(&r);
                assert_eq!(boot::decode(&again).as_ref(), Some(&r), "{again:?}");
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
