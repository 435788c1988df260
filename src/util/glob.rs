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
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Most patterns are plain names (`match = { iface = "wan" }`): equality.
    if !pattern.iter().any(|&b| b == b'*' || b == b'?') {
        return pattern == text;
    }
    // Bytes, not chars: `*` and `?` are ASCII, which never occurs inside a multi-byte
    // UTF-8 sequence, and UTF-8 is prefix-free, so equal bytes are equal characters and
    // every offset below stays on a character boundary. `?` and a `*` taking one more
    // step over the text move by a whole character.
    let mut p = 0usize;
    let mut t = 0usize;
    // After the latest `*`: (pattern offset just past it, text offset the star's run ends at).
    let mut star: Option<(usize, usize)> = None;

    while let Some(&tc) = text.get(t) {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += utf8_len(tc);
                continue;
            }
            Some(&pc) if pc == tc => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the latest `*` swallow one more character and retry after it.
        match star {
            Some((sp, st)) => {
                let Some(&c) = text.get(st) else {
                    return false;
                };
                let st = st + utf8_len(c);
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
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

/// The length of the UTF-8 sequence that `lead` (a leading byte of a `str`) starts.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
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

    /// The definition, character by character and recursive: the reference the byte-level
    /// matcher must agree with.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    #[test]
    fn bytes_agree_with_the_definition_on_multibyte_text() {
        // Every pattern and text of up to 4 characters over an alphabet with 2-, 3- and
        // 4-byte characters sharing leading bytes.
        let alphabet = ['a', 'é', 'è', '日', '本', '🦀', '*', '?'];
        let strings = |max: usize, with_wild: bool| {
            let chars: Vec<char> = alphabet
                .iter()
                .copied()
                .filter(|&c| with_wild || (c != '*' && c != '?'))
                .collect();
            let mut all = vec![String::new()];
            let mut layer = vec![String::new()];
            for _ in 0..max {
                layer = layer
                    .iter()
                    .flat_map(|s| chars.iter().map(move |&c| format!("{s}{c}")))
                    .collect();
                all.extend(layer.iter().cloned());
            }
            all
        };
        let patterns = strings(3, true);
        let texts = strings(3, false);
        for p in &patterns {
            let pc: Vec<char> = p.chars().collect();
            for t in &texts {
                let tc: Vec<char> = t.chars().collect();
                assert_eq!(glob_match(p, t), reference(&pc, &tc), "{p:?} vs {t:?}");
            }
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
