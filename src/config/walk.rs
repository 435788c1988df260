//! The walker: typed reads of toml's spanned tree, each problem a diagnostic.

use super::diag::Collector;
use super::parse_duration;
use crate::limits::*;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The `name` of each table (those that have a string one), reporting duplicates at the
/// second occurrence.
pub(super) fn names(
    c: &mut Collector,
    tables: &[(&DeTable, Range<usize>)],
    what: &str,
) -> Vec<(String, Range<usize>)> {
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    for (t, _) in tables {
        let Some((_, v)) = find(t, "name") else {
            continue;
        };
        let Some(name) = v.get_ref().as_str() else {
            continue;
        };
        if let Some((_, first)) = out.iter().find(|(n, _)| n == name) {
            let (file, line, col) = c.locate(first.start);
            let at = if file == c.locate(v.span().start).0 {
                format!("on line {line}")
            } else {
                format!("at {file}:{line}:{col}")
            };
            c.error(
                v.span(),
                format!("duplicate {what} name `{name}` (first defined {at})"),
            );
        }
        out.push((name.to_string(), v.span()));
    }
    out
}

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

pub(super) fn find<'t, 'i>(t: &'t DeTable<'i>, key: &str) -> Option<(Range<usize>, &'t Val<'i>)> {
    t.iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, v)| (k.span(), v))
}

/// Reports keys of `t` that are not in `allowed`. Keys in `later` are part of the design
/// but not of this build: they get their own message instead of "unknown".
pub(super) fn check_keys(
    c: &mut Collector,
    t: &DeTable,
    allowed: &[&str],
    later: &[&str],
    what: &str,
) {
    for (k, _) in t.iter() {
        let key = k.get_ref().as_ref();
        if allowed.contains(&key) {
            continue;
        }
        if later.contains(&key) {
            c.error(
                k.span(),
                format!("`{key}` in {what} is not supported by this version of tocsin yet"),
            );
        } else {
            c.error(
                k.span(),
                format!(
                    "unknown key `{key}` in {what}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

pub(super) fn array_of_tables<'t, 'i>(
    c: &mut Collector,
    doc: &'t DeTable<'i>,
    key: &str,
) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
    let Some((_, v)) = find(doc, key) else {
        return Vec::new();
    };
    let Some(arr) = v.get_ref().as_array() else {
        c.error(
            v.span(),
            format!("`{key}` must be an array of tables: [[{key}]]"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_table() {
            Some(t) => out.push((t, item.span())),
            None => c.error(
                item.span(),
                format!("each `{key}` must be a table: [[{key}]]"),
            ),
        }
    }
    out
}

pub(super) fn get_str<'t>(
    c: &mut Collector,
    t: &'t DeTable,
    key: &str,
) -> Option<(&'t str, Range<usize>)> {
    let (_, v) = find(t, key)?;
    match v.get_ref().as_str() {
        Some(s) => Some((s, v.span())),
        None => {
            c.error(
                v.span(),
                format!("`{key}` must be a string, not {}", v.get_ref().type_str()),
            );
            None
        }
    }
}

pub(super) fn get_bool(c: &mut Collector, t: &DeTable, key: &str) -> Option<bool> {
    let (_, v) = find(t, key)?;
    let b = v.get_ref().as_bool();
    if b.is_none() {
        c.error(v.span(), format!("`{key}` must be true or false"));
    }
    b
}

/// An integer in `lo..=hi`.
pub(super) fn get_int(c: &mut Collector, t: &DeTable, key: &str, lo: i64, hi: i64) -> Option<i64> {
    let (_, v) = find(t, key)?;
    let n = v
        .get_ref()
        .as_integer()
        .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
    match n {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        Some(n) => {
            c.error(
                v.span(),
                format!("`{key}` = {n} is out of range: expected {lo}..={hi}"),
            );
            None
        }
        None => {
            c.error(v.span(), format!("`{key}` must be an integer"));
            None
        }
    }
}

pub(super) fn get_duration(c: &mut Collector, t: &DeTable, key: &str) -> Option<u64> {
    let (s, span) = get_str(c, t, key)?;
    match parse_duration(s) {
        Ok(ms) => Some(ms),
        Err(m) => {
            c.error(span, format!("`{key}`: {m}"));
            None
        }
    }
}

pub(super) fn get_table<'t, 'i>(
    c: &mut Collector,
    t: &'t DeTable<'i>,
    key: &str,
) -> Option<&'t DeTable<'i>> {
    let (_, v) = find(t, key)?;
    let tbl = v.get_ref().as_table();
    if tbl.is_none() {
        c.error(
            v.span(),
            format!("`{key}` must be a table, like {key} = {{ k = \"v\" }}"),
        );
    }
    tbl
}

/// A table of string values, in file order, with the key spans.
/// One `key = "value"` of an inline table, with both spans.
pub(super) struct Pair {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) key_span: Range<usize>,
    pub(super) value_span: Range<usize>,
}

pub(super) fn get_string_map(c: &mut Collector, t: &DeTable, key: &str) -> Vec<Pair> {
    let Some(tbl) = get_table(c, t, key) else {
        return Vec::new();
    };
    let mut out: Vec<Pair> = tbl
        .iter()
        .filter_map(|(k, v)| match v.get_ref().as_str() {
            Some(s) => Some(Pair {
                key: k.get_ref().to_string(),
                value: s.to_string(),
                key_span: k.span(),
                value_span: v.span(),
            }),
            None => {
                c.error(
                    v.span(),
                    format!("`{key}.{}` must be a string", k.get_ref()),
                );
                None
            }
        })
        .collect();
    out.sort_by_key(|e| e.key_span.start);
    out
}

/// An array of strings, each with its span.
pub(super) fn get_string_list<'t>(
    c: &mut Collector,
    t: &'t DeTable,
    key: &str,
) -> Option<Vec<(&'t str, Range<usize>)>> {
    let (_, v) = find(t, key)?;
    let Some(arr) = v.get_ref().as_array() else {
        c.error(
            v.span(),
            format!("`{key}` must be an array of strings, like [\"a\", \"b\"]"),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_str() {
            Some(s) => out.push((s, item.span())),
            None => c.error(item.span(), format!("`{key}` must contain only strings")),
        }
    }
    Some(out)
}

pub(super) fn valid_name(c: &mut Collector, name: &str, span: Range<usize>, what: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        c.error(
            span,
            format!("{what} name must be 1 to {MAX_NAME_LEN} bytes long"),
        );
        return false;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.error(
            span,
            format!("{what} name `{name}` may contain only letters, digits, `-`, `_` and `.`"),
        );
        return false;
    }
    true
}
