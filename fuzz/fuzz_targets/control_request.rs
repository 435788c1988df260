//! What a client writes to the control socket: at most 256 bytes, the request on the first
//! line. Invariants: the line is the first line, trimmed, whatever follows the newline;
//! `status` and `replay ID` are recognised exactly; bounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::control::{Request, MAX_REQUEST};
use tocsin::fuzzing::control_request_line;
use tocsin_fuzz::measure;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_REQUEST)];
    let (line, a) = measure(|| control_request_line(data));
    assert_eq!(a.count, 0, "{a:?}");
    // The first line, if it is text, is what the request is, whatever comes after it.
    let first = data.split(|&b| b == b'\n').next().unwrap_or(b"");
    if let Ok(first) = std::str::from_utf8(first) {
        let want = first.strip_suffix('\r').unwrap_or(first).trim();
        assert_eq!(line, Some(want), "{:?}", String::from_utf8_lossy(data));
    }
    let Some(line) = line else {
        return;
    };
    assert!(!line.contains('\n'));
    match Request::parse(line) {
        Request::Status => assert_eq!(line, "status"),
        Request::Replay(id) => {
            assert!(line.starts_with("replay "));
            assert_eq!(id, id.trim());
            assert!(line.ends_with(id));
        }
        Request::Mute(all) => {
            assert_eq!(all, line);
            assert!(line.starts_with("mute ") || line.starts_with("unmute "));
        }
        Request::Unknown(other) => {
            assert_eq!(other, line);
            assert_ne!(line, "status");
            assert!(!line.starts_with("replay "));
            assert!(!line.starts_with("mute ") && !line.starts_with("unmute "));
        }
    }
});
