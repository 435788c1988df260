//! Listing /proc without heap allocation: `getdents64` into a fixed buffer.
//!
//! `std::fs::read_dir` allocates for every entry (each `DirEntry` owns its name) and libc's
//! `opendir` mallocs its own buffer, so the process sources would allocate every cycle on a
//! busy router. Here the directory is opened with `open(O_DIRECTORY)` and its records are
//! read into the caller's buffer.

use std::ffi::CStr;

/// Calls `f(name)` for each entry of the directory at `path` (without `.` and `..`).
/// `buf` holds the raw records between calls; its size bounds one `getdents64` call,
/// not the number of entries. Returns false when the directory cannot be opened.
pub fn for_each_entry(path: &CStr, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> bool {
    // SAFETY: `path` is a valid NUL-terminated string; the flags ask for a read-only
    // directory descriptor that is closed below on every path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes and `fd` is open.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n <= 0 {
            break;
        }
        let filled = &buf[..(n as usize).min(buf.len())];
        for_each_record(filled, &mut f);
    }
    // SAFETY: `fd` was opened above and is not used after this.
    unsafe { libc::close(fd) };
    true
}

/// Walks `linux_dirent64` records: `u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type;
/// char d_name[]` (NUL-terminated). A malformed record ends the walk.
fn for_each_record(mut recs: &[u8], f: &mut impl FnMut(&[u8])) {
    const NAME_AT: usize = 19;
    while recs.len() >= NAME_AT {
        let reclen = usize::from(u16::from_ne_bytes([recs[16], recs[17]]));
        if reclen < NAME_AT || reclen > recs.len() {
            return;
        }
        let raw = &recs[NAME_AT..reclen];
        let name = raw.split(|&b| b == 0).next().unwrap_or(raw);
        if name != b"." && name != b".." {
            f(name);
        }
        recs = &recs[reclen..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Vec<u8> {
        let mut r = vec![0u8; 19];
        r.extend_from_slice(name.as_bytes());
        r.push(0);
        while r.len() % 8 != 0 {
            r.push(0);
        }
        let len = r.len() as u16;
        r[16..18].copy_from_slice(&len.to_ne_bytes());
        r
    }

    #[test]
    fn walks_records_and_stops_at_garbage() {
        let mut recs = Vec::new();
        for n in [".", "..", "1", "self", "4242"] {
            recs.extend(record(n));
        }
        recs.extend_from_slice(&[1, 2, 3]);
        let mut names = Vec::new();
        for_each_record(&recs, &mut |n| {
            names.push(String::from_utf8_lossy(n).into_owned())
        });
        assert_eq!(names, ["1", "self", "4242"]);
        let mut bad = record("x");
        bad[16..18].copy_from_slice(&999u16.to_ne_bytes());
        for_each_record(&bad, &mut |_| panic!("no entry from a bad record"));
    }

    #[test]
    fn lists_a_real_directory_with_a_small_buffer() {
        let dir = std::env::temp_dir().join(format!("tocsin-procdir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..50 {
            std::fs::write(dir.join(format!("{i}")), "").expect("write");
        }
        let c = std::ffi::CString::new(dir.to_str().expect("utf8")).expect("cstr");
        let mut buf = [0u8; 256];
        let mut n = 0;
        assert!(for_each_entry(&c, &mut buf, |_| n += 1));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(n, 50);
        let missing = std::ffi::CString::new("/nonexistent/tocsin").expect("cstr");
        assert!(!for_each_entry(&missing, &mut buf, |_| {}));
    }
}
