//! Shell-style glob matching for dimension values (`match = { mount = "/mnt/*" }`).
//!
//! `*` matches any run of characters, including `/` and the empty run; `?` matches exactly
//! one character (a Unicode scalar value, not a byte); every other character matches
//! itself. The whole text must match. There is no escaping and no character classes.
//!
//! The matcher is the classic iterative backtracking algorithm: it remembers only the most
//! recent `*` and retries from there, so it runs in O(|pattern| × |text|) time in the worst
//! case, with no recursion and no allocation.

/// Whether `text` matches the glob `pattern` as a whole (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // Byte offsets into `pattern` and `text`, always on character boundaries.
    let mut p = 0usize;
    let mut t = 0usize;
    // After the latest `*`: (pattern offset just past it, text offset the star's run ends at).
    let mut star: Option<(usize, usize)> = None;

    while let Some(tc) = text.get(t..).and_then(|s| s.chars().next()) {
        match pattern.get(p..).and_then(|s| s.chars().next()) {
            Some('*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some('?') => {
                p += 1;
                t += tc.len_utf8();
                continue;
            }
            Some(pc) if pc == tc => {
                p += pc.len_utf8();
                t += tc.len_utf8();
                continue;
            }
            _ => {}
        }
        // Mismatch: let the latest `*` swallow one more character and retry after it.
        match star {
            Some((sp, st)) => {
                let Some(c) = text.get(st..).and_then(|s| s.chars().next()) else {
                    return false;
                };
                let st = st + c.len_utf8();
                star = Some((sp, st));
                p = sp;
                t = st;
            }
            None => return false,
        }
    }
    // Text used up: only `*`s may remain in the pattern.
    pattern
        .get(p..)
        .is_some_and(|rest| rest.bytes().all(|b| b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            // literals
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("/", "/", true),
            ("/data", "/data", true),
            ("/data", "/dat", false),
            ("/dat", "/data", false),
            ("/Data", "/data", false),
            // star
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("**", "", true),
            ("***", "abc", true),
            ("/mnt/*", "/mnt/usb", true),
            ("/mnt/*", "/mnt/", true),
            ("/mnt/*", "/mnt", false),
            ("/mnt/*", "/mnt/usb/part1", true),
            ("/mnt/*/x", "/mnt/a/b/x", true),
            ("/mnt/*/x", "/mnt/a/b/y", false),
            ("*.log", "a.b.log", true),
            ("*.log", "a.log.gz", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*b*c", "abcabcabc", true),
            ("a*b*c*", "ab", false),
            ("*a", "bbba", true),
            ("*a", "bbab", false),
            ("*ab", "aab", true),
            ("*aab", "aaab", true),
            // question mark
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("/dev/sd?", "/dev/sda", true),
            ("/dev/sd?", "/dev/sd", false),
            ("/dev/sd?1", "/dev/sdb1", true),
            ("?*", "", false),
            ("?*", "x", true),
            ("*?", "xy", true),
            ("??", "é", false),
            ("?", "é", true),
            ("/mnt/?sb", "/mnt/üsb", true),
            ("*é", "aé", true),
            ("é*", "éa", true),
            // literal characters that are special elsewhere
            ("[ab]", "[ab]", true),
            ("[ab]", "a", false),
            ("\\*", "\\x", true),
            ("a.b", "aXb", false),
        ];
        for &(p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "glob_match({p:?}, {t:?})");
        }
    }

    #[test]
    fn pathological_is_fast() {
        // Exponential for naive recursion; quadratic at worst here.
        let text = "a".repeat(2000);
        let pattern = "*a".repeat(50) + "b";
        assert!(!glob_match(&pattern, &text));
        let pattern = "*a".repeat(50);
        assert!(glob_match(&pattern, &text));
    }
}
