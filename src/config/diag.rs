//! Config diagnostics: every problem with its file, line and column.

use crate::log::Esc;
use std::fmt;
use std::ops::Range;

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given on the command line.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, and what is expected instead.
    pub message: String,
}

/// `FILE:LINE:COL: message` on one line: control characters in the file name and the
/// message (a value the message echoes) are escaped as log lines escape them
/// ([`crate::log::Escaped`]).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            Esc(&self.file),
            self.line,
            self.col,
            Esc(&self.message)
        )
    }
}

/// Every problem of one config, sorted by position. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for a config and the files it includes.
///
/// Every file is parsed from its text preceded by as many spaces as the files before it
/// are long (TOML ignores leading whitespace), so byte offsets are unique across files:
/// an offset alone says which file, line and column it is.
pub(crate) struct Collector<'a> {
    /// Name, padded text, and where the file's own text starts in it.
    files: Vec<(&'a str, &'a str, usize)>,
    diags: Vec<(usize, Diagnostic)>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a str, src: &'a str) -> Self {
        Collector {
            files: vec![(file, src, 0)],
            diags: Vec::new(),
        }
    }

    /// Adds an included file: `padded` is its text after `base` spaces.
    pub(crate) fn add(&mut self, file: &'a str, padded: &'a str, base: usize) {
        self.files.push((file, padded, base));
    }

    /// The index of the file that holds `offset`.
    fn file_of(&self, offset: usize) -> usize {
        self.files
            .iter()
            .rposition(|&(_, _, base)| base <= offset)
            .unwrap_or(0)
    }

    /// File, line and column of `offset`.
    pub(crate) fn locate(&self, offset: usize) -> (&'a str, usize, usize) {
        let (file, padded, base) = self.files[self.file_of(offset)];
        let (line, col) = line_col(&padded[base..], offset.saturating_sub(base));
        (file, line, col)
    }

    /// Records `message` at the start of `span` (a byte range of the source).
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (file, line, col) = self.locate(span.start);
        self.diags.push((
            self.file_of(span.start),
            Diagnostic {
                file: file.to_string(),
                line,
                col,
                message: message.into(),
            },
        ));
    }

    /// The (padded) text that holds `offset`: spans index it directly.
    pub(crate) fn src_at(&self, offset: usize) -> &'a str {
        self.files[self.file_of(offset)].1
    }

    pub(crate) fn finish(mut self) -> Result<(), Diagnostics> {
        if self.diags.is_empty() {
            return Ok(());
        }
        self.diags.sort_by_key(|(f, d)| (*f, d.line, d.col));
        self.diags.dedup();
        Err(Diagnostics(
            self.diags.into_iter().map(|(_, d)| d).collect(),
        ))
    }
}

/// 1-based line and character column of byte `offset` in `src`.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_is_one_line_whatever_it_echoes() {
        let d = Diagnostic {
            file: "t.toml".into(),
            line: 3,
            col: 8,
            message: "rule name `a\nb\0c` is bad".into(),
        };
        assert_eq!(d.to_string(), "t.toml:3:8: rule name `a\\nb\\u{0}c` is bad");
        let two = Diagnostics(vec![d.clone(), d]);
        assert_eq!(two.to_string().lines().count(), 2, "one line each");
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let src = "a = 1\nnom = \"é\" x\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        let x = src.find('x').unwrap();
        assert_eq!(line_col(src, x), (2, 11));
        assert_eq!(line_col(src, 10_000), (3, 1));
    }
}
