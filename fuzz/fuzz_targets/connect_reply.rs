//! A proxy's reply head to CONNECT (RFC 9110 §9.3.6), as the tunnel code reads it: bytes
//! up to and including the blank line. Invariant: a tunnel is taken only when the status
//! line is `HTTP/1.x 2xx` (three digits); credentials are asked for only on a 407 status
//! line; a refusal reports the first line, one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::fuzzing::proxy_reply;
use tocsin_fuzz::measure;

/// The largest head the tunnel reads.
const MAX_PROXY_HEAD: usize = 8192;

fn status_line_is_2xx(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return false;
    };
    version.len() == 8
        && version.starts_with(b"HTTP/1.")
        && version[7].is_ascii_digit()
        && code.len() == 3
        && code[0] == b'2'
        && code.iter().all(u8::is_ascii_digit)
}

fuzz_target!(|data: &[u8]| {
    let mut head = data[..data.len().min(MAX_PROXY_HEAD - 4)].to_vec();
    // The tunnel stops reading at the first blank line: what it hands on ends there.
    if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
        head.truncate(i);
    }
    head.extend_from_slice(b"\r\n\r\n");
    let (r, a) = measure(|| proxy_reply(&head));
    // At most the line reported, as text (each byte that is not UTF-8 becomes a 3-byte
    // U+FFFD, in a buffer that grows by doubling) and trimmed: in proportion to the
    // head, never to anything else.
    assert!(
        a.peak <= 12 * head.len() + 64,
        "{a:?} for {} bytes",
        head.len()
    );
    match r {
        Ok(()) => assert!(
            status_line_is_2xx(&head),
            "took a tunnel on {:?}",
            String::from_utf8_lossy(&head)
        ),
        Err((auth, first)) => {
            assert!(!first.contains('\n'), "{first:?}");
            assert!(first.len() <= 3 * head.len(), "{first:?}");
            // Credentials are asked for only by a 407 status line.
            if auth {
                let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert!(
                    line.starts_with(b"HTTP/1.")
                        && line[7].is_ascii_digit()
                        && (line.get(8..) == Some(b" 407".as_slice())
                            || line.get(8..13) == Some(b" 407 ".as_slice())),
                    "{first:?}"
                );
            }
        }
    }
});
