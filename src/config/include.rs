//! `[agent] include`: the included files, read and merged into one `[agent]` table.

use super::diag::Collector;
use super::host::Host;
use super::walk::find;
use crate::limits::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A problem at a span, found before the diagnostics collector exists.
pub(super) type Problem = (Range<usize>, String);

/// The files `[agent] include` of `doc` names, read: (name, text), in order; and the
/// problems, at spans of `doc`. A relative pattern is relative to `file`'s directory; the
/// last path component may hold `*` and `?`; files are taken in name order. `total` is
/// the main file's length: with the included files it may not exceed [`MAX_CONFIG_LEN`].
/// Directories are listed and files read through `host`.
pub(super) fn read_includes(
    doc: &DeTable,
    file: &str,
    mut total: usize,
    include_dir: Option<&Path>,
    host: &dyn Host,
) -> (Vec<(String, String)>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let Some((_, v)) = find(doc, "agent")
        .and_then(|(_, a)| a.get_ref().as_table())
        .and_then(|a| find(a, "include"))
    else {
        return (out, errors);
    };
    let patterns: Vec<(String, Range<usize>)> = match v.get_ref() {
        DeValue::String(s) => vec![(s.to_string(), v.span())],
        DeValue::Array(a) if a.iter().all(|x| x.get_ref().as_str().is_some()) => a
            .iter()
            .map(|x| (x.get_ref().as_str().unwrap_or("").to_string(), x.span()))
            .collect(),
        _ => {
            errors.push((
                v.span(),
                "`include` must be a path pattern (\"/etc/tocsin/conf.d/*.toml\") or an array of them".into(),
            ));
            return (out, errors);
        }
    };
    let here = Path::new(file).parent().unwrap_or(Path::new(""));
    // A pattern may match the main file itself (`include = "*.toml"` beside it): it is
    // read already, so it is skipped, not merged with itself.
    let main = host.file_id(Path::new(file));
    let mut seen: Vec<PathBuf> = Vec::new();
    for (pattern, span) in patterns {
        let full = match include_dir {
            // Every copy, whatever the pattern matched (`conf.d/*` may bring `x.conf`);
            // unfinished copies are dot files, which are never read.
            Some(dir) => dir.join("*"),
            None => here.join(&pattern),
        };
        let (dir, glob) = match (full.parent(), full.file_name().and_then(|n| n.to_str())) {
            (Some(d), Some(g)) if !g.is_empty() => (d.to_path_buf(), g.to_string()),
            _ => {
                errors.push((span, format!("`include` = \"{pattern}\" names no file")));
                continue;
            }
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            errors.push((
                span,
                "`include`: only the last path component may hold * or ?".into(),
            ));
            continue;
        }
        // A directory that does not exist is an empty conf.d. `-c tocsin.toml` with
        // `include = "*.toml"` leaves the directory empty: that is the current one.
        let list = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        };
        let mut names: Vec<String> = host
            .read_dir(list)
            .map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|n| n.into_string().ok())
                    .filter(|n| !n.starts_with('.') && crate::util::glob_match(&glob, n))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            let path = dir.join(&n);
            if host.is_dir(&path)
                || seen.contains(&path)
                || main.is_some_and(|m| host.file_id(&path) == Some(m))
            {
                continue;
            }
            seen.push(path.clone());
            if seen.len() > MAX_INCLUDES {
                errors.push((
                    span.clone(),
                    format!("`include` matches more than {MAX_INCLUDES} files"),
                ));
                return (out, errors);
            }
            match host.read_file(&path) {
                Err(e) => errors.push((
                    span.clone(),
                    format!("cannot read included {}: {e}", path.display()),
                )),
                // The limit is for all files together: each is parsed after as many
                // spaces as the ones before it are long, so memory grows with the square
                // of the total (64 files of 250 KB took 500 MB).
                Ok(b) if total + b.len() > MAX_CONFIG_LEN => {
                    errors.push((
                        span.clone(),
                        format!(
                            "included {} brings the config to {} bytes; the limit for all files together is {MAX_CONFIG_LEN}",
                            path.display(),
                            total + b.len()
                        ),
                    ));
                    return (out, errors);
                }
                Ok(b) => match String::from_utf8(b).inspect(|t| total += t.len()) {
                    Ok(text) => out.push((path.display().to_string(), text)),
                    Err(_) => errors.push((
                        span.clone(),
                        format!("included {} is not valid UTF-8", path.display()),
                    )),
                },
            }
        }
    }
    (out, errors)
}

/// The `[agent]` tables of every file as one: a key set in two files is an error at the
/// second naming the first; `labels` merge per label; `include` only in the main file.
pub(super) fn merged_agent<'i>(c: &mut Collector, docs: &[DeTable<'i>]) -> DeTable<'i> {
    let mut merged = DeTable::new();
    let mut labels: Option<(Range<usize>, Range<usize>, DeTable<'i>)> = None;
    for (i, d) in docs.iter().enumerate() {
        let Some((_, v)) = find(d, "agent") else {
            continue;
        };
        let Some(t) = v.get_ref().as_table() else {
            c.error(v.span(), "`agent` must be a table: [agent]");
            continue;
        };
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            if key == "include" && i > 0 {
                c.error(k.span(), "`include` may stand only in the main config file");
                continue;
            }
            if let (Some(new), "labels") = (val.get_ref().as_table(), key) {
                let (_, _, all) =
                    labels.get_or_insert_with(|| (k.span(), val.span(), DeTable::new()));
                for (lk, lv) in new.iter() {
                    if let Some((first, _)) = all.get_key_value(lk.get_ref().as_ref()) {
                        let (file, line, col) = c.locate(first.span().start);
                        c.error(
                            lk.span(),
                            format!(
                                "label `{}` is already set at {file}:{line}:{col}",
                                lk.get_ref()
                            ),
                        );
                    } else {
                        all.insert(lk.clone(), lv.clone());
                    }
                }
                continue;
            }
            if let Some((first, _)) = merged.get_key_value(key) {
                let (file, line, col) = c.locate(first.span().start);
                c.error(
                    k.span(),
                    format!("`{key}` is already set at {file}:{line}:{col}"),
                );
                continue;
            }
            merged.insert(k.clone(), val.clone());
        }
    }
    // A `labels` that is not a table went in as a plain key: it stays, so that its error
    // is reported rather than hidden under the other files' labels.
    if let Some((kspan, vspan, all)) = labels.filter(|_| !merged.contains_key("labels")) {
        merged.insert(
            Spanned::new(kspan, "labels".into()),
            Spanned::new(vspan, DeValue::Table(all)),
        );
    }
    merged
}
