//! The bad-config corpus: every file in `tests/bad-configs/` is a small config with exactly one
//! deliberate mistake. Its first line says which diagnostic the mistake must produce:
//!
//! ```text
//! # expect: LINE:COL: substring of the message
//! ```
//!
//! LINE and COL are 1-based, COL counted in characters, as `tocsin check` prints them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus directory, relative to the package root.
const CORPUS: &str = "tests/bad-configs";

/// What a corpus file's first line promises.
struct Expect {
    line: usize,
    col: usize,
    substring: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS)
}

/// Every `*.toml` of the corpus, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Parses the `# expect: LINE:COL: substring` first line of `path`.
fn expectation(path: &Path) -> Result<Expect, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let first = text.lines().next().unwrap_or("").trim_end();
    let bad = || format!("first line must be `# expect: LINE:COL: substring`, not `{first}`");
    let rest = first.strip_prefix("# expect: ").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().and_then(|s| s.trim().parse().ok());
    let col = parts.next().and_then(|s| s.trim().parse().ok());
    let substring = parts.next().map(str::trim).unwrap_or("");
    match (line, col) {
        (Some(line), Some(col)) if line > 0 && col > 0 && !substring.is_empty() => Ok(Expect {
            line,
            col,
            substring: substring.to_string(),
        }),
        _ => Err(bad()),
    }
}

/// `None` when `path` is rejected as its first line says; otherwise what went wrong.
fn check_one(path: &Path) -> Option<String> {
    let expect = match expectation(path) {
        Ok(e) => e,
        Err(m) => return Some(m),
    };
    let want = format!(
        "expected {}:{}: {}",
        expect.line, expect.col, expect.substring
    );
    let diags = match tocsin::config::load(path) {
        Ok(_) => return Some(format!("{want}\n    but the config was ACCEPTED")),
        Err(d) => d,
    };
    let given = path.display().to_string();
    let found = diags.0.iter().find(|d| {
        d.line == expect.line && d.col == expect.col && d.message.contains(&expect.substring)
    });
    match found {
        Some(d) if d.file == given => None,
        Some(d) => Some(format!(
            "{want}\n    the diagnostic names the file `{}`, not `{given}`",
            d.file
        )),
        None => {
            let mut m = format!("{want}\n    but got:");
            if diags.0.is_empty() {
                m.push_str(" an empty list of diagnostics");
            }
            for d in &diags.0 {
                m.push_str(&format!("\n      {}:{}: {}", d.line, d.col, d.message));
            }
            Some(m)
        }
    }
}

#[test]
fn every_bad_config_is_rejected_at_the_right_place() {
    let files = corpus();
    assert!(
        files.len() >= 20,
        "{CORPUS} holds {} files; the corpus needs at least 20",
        files.len()
    );
    let mut numbers = Vec::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let number = name.split_once('-').filter(|(n, rest)| {
            n.len() >= 2 && n.bytes().all(|b| b.is_ascii_digit()) && rest.len() > 5
        });
        match number {
            Some((n, _)) if numbers.contains(&n.to_string()) => {
                failures.push(format!("{name}: the number {n} is used twice"))
            }
            Some((n, _)) => numbers.push(n.to_string()),
            None => failures.push(format!("{name}: the name must be NN-short-name.toml")),
        }
        if let Some(m) = check_one(path) {
            failures.push(format!("{name}: {m}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs are not rejected as their first line says:\n\n{}\n",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn tocsin_check_prints_file_line_col_and_exits_1() {
    let path = corpus()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-duration-space.toml"))
        .expect("the corpus has a *-duration-space.toml file");
    let expect = expectation(&path).unwrap_or_else(|m| panic!("{}: {m}", path.display()));
    // A relative path, as an operator types it: diagnostics name the file as given.
    let given = format!(
        "{CORPUS}/{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "-c", &given])
        .output()
        .expect("run tocsin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status of `tocsin check -c {given}`; stderr:\n{stderr}"
    );
    let prefix = format!("{given}:{}:{}: ", expect.line, expect.col);
    assert!(
        stderr.starts_with(&prefix),
        "stderr of `tocsin check -c {given}` should start with `{prefix}`:\n{stderr}"
    );
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.contains(&expect.substring),
        "the first line should contain `{}`: {first}",
        expect.substring
    );
}
