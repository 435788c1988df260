//! The layering of src/: every `crate::X` (and `super::` path reaching the crate root)
//! in a file of src/ names the top-level module X it depends on, and a module may depend
//! only on modules of its own layer or below ([`LAYERS`]). Inside one top-level module
//! anything goes (`render::template` ⇄ `render::alarm`): only dependencies between
//! top-level modules are checked.
//!
//! The checker reads the source text only: comments and string and character literals are
//! blanked first, `use crate::{a, b::c}` groups count each member, and inline modules
//! (`mod tests { … }`) are followed for `super::`. It does not expand macros, and it does
//! not see paths through the crate's own name (`tocsin::X`, only main.rs has them) or
//! through a re-export at the crate root.

use std::path::Path;

/// The layers of src/, bottom first: a module may import modules of its own layer or
/// below, never above. A module named here that does not exist (yet) is allowed; a
/// top-level module of src/ that is not named here is reported.
pub const LAYERS: [&[&str]; 9] = [
    // 0. base: pure helpers (base64, HMAC, percent-encoding, civil dates, event ids),
    //    the clock, capacities, logging
    &["util", "clock", "limits", "log"],
    // 1. what flows: samples and events
    &["metric", "event"],
    // 2. reading the machine, evaluating rules
    &["source", "rule"],
    // 3. payload formats
    &["render"],
    // 4. which webhooks an event goes to
    &["route"],
    // 5. outboxes, the HTTP(S) client, retries, the spool
    &["deliver"],
    // 6. TOML to a validated Config
    &["config"],
    // 7. the running agent and its shell pieces
    &["service", "control", "notify", "status", "lkg"],
    // 8. the command line and the crate roots
    &["cli", "main", "lib"],
];

/// The layer of top-level module `module`, if it has one.
pub fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every import of `files` (path under the package, such as `src/render/mod.rs`, and
/// text) that goes up the layers, as `src/file.rs:LINE: <module> imports <module> (layer
/// N above layer M)`, and every top-level module without a layer; in file order.
pub fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut unlayered: Vec<String> = Vec::new();
    for (path, text) in files {
        let Some(module) = module_path(path) else {
            continue;
        };
        let from = top(&module, path);
        let Some(from_layer) = layer_of(&from) else {
            if !unlayered.contains(&from) {
                problems.push(format!("{path}: module {from} has no layer in LAYERS"));
                unlayered.push(from);
            }
            continue;
        };
        for (line, to) in imports(&module, text) {
            if to == from {
                continue;
            }
            // Not a layered module: an item at the crate root, a macro, or a module
            // without a layer (reported at its own files).
            let Some(to_layer) = layer_of(&to) else {
                continue;
            };
            if to_layer > from_layer {
                problems.push(format!(
                    "{path}:{line}: {from} imports {to} (layer {to_layer} above layer {from_layer})"
                ));
            }
        }
    }
    problems
}

/// The module a file of src/ is, as its path below the crate root (`src/render/alarm.rs`:
/// `render::alarm`; `src/render/mod.rs`: `render`; `src/lib.rs` and `src/main.rs`: the
/// root). `None` for a file that is not Rust.
fn module_path(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let rel = rel.strip_suffix(".rs")?;
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") || matches!(rel, "lib" | "main") {
        parts.pop();
    }
    Some(parts)
}

/// The top-level module of `module` (a file of the crate root is `lib` or `main`).
fn top(module: &[String], path: &str) -> String {
    match module.first() {
        Some(m) => m.clone(),
        None if path.ends_with("main.rs") => "main".to_string(),
        None => "lib".to_string(),
    }
}

/// The top-level modules that the code of a file of module `module` names, with the line
/// of each: `crate::X`, `$crate::X`, each member of `crate::{X, Y::Z}`, and `super::X`
/// where the `super`s climb to the crate root.
fn imports(module: &[String], text: &str) -> Vec<(usize, String)> {
    let code: Vec<char> = code_only(text).chars().collect();
    let inline = inline_modules(&code);
    let line_of = |at: usize| 1 + code[..at].iter().filter(|&&c| c == '\n').count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !starts_word(&code, i) {
            i += 1;
            continue;
        }
        let at_root = if let Some(next) = after(&code, i, "crate") {
            Some(next)
        } else if after(&code, i, "super").is_some() && !follows_path(&code, i) {
            let mut next = i;
            let mut climbs = 0;
            while let Some(n) = after(&code, next, "super") {
                climbs += 1;
                next = skip_space(&code, n);
            }
            // Where this position is: the file's module and the inline modules around it.
            let depth = module.len()
                + inline
                    .iter()
                    .filter(|(start, end)| (*start..*end).contains(&i))
                    .count();
            (climbs == depth).then_some(next)
        } else {
            None
        };
        if let Some(next) = at_root {
            for (at, name) in first_segments(&code, next) {
                out.push((line_of(at), name));
            }
        }
        i += 1;
    }
    out
}

/// Whether an identifier may start at `i`: no identifier character just before it (a `$`,
/// as in `$crate`, is not one).
fn starts_word(code: &[char], i: usize) -> bool {
    i == 0 || !is_ident(code[i - 1])
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// If `word::` (spaces allowed around `::`) starts at `i`, the position after it.
fn after(code: &[char], i: usize, word: &str) -> Option<usize> {
    let w: Vec<char> = word.chars().collect();
    if code.len() < i + w.len() || code[i..i + w.len()] != w[..] {
        return None;
    }
    let mut j = i + w.len();
    if code.get(j).is_some_and(|&c| is_ident(c)) {
        return None;
    }
    j = skip_space(code, j);
    (code.get(j) == Some(&':') && code.get(j + 1) == Some(&':')).then(|| skip_space(code, j + 2))
}

/// Whether the path segment at `i` continues a path (`self::super`, `x::super`).
fn follows_path(code: &[char], i: usize) -> bool {
    let mut j = i;
    while j > 0 && code[j - 1].is_whitespace() {
        j -= 1;
    }
    j >= 2 && code[j - 1] == ':' && code[j - 2] == ':'
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The first segment of the path at `i`, with its position: `x` of `x::y`, or each
/// member's first segment of a group `{x, y::z, w::{…}}` (not `self` or `*`).
fn first_segments(code: &[char], i: usize) -> Vec<(usize, String)> {
    let ident = |at: usize| -> Option<(usize, String)> {
        let at = skip_space(code, at);
        let name: String = code[at..].iter().take_while(|&&c| is_ident(c)).collect();
        (!name.is_empty() && name != "self").then_some((at, name))
    };
    if code.get(i) != Some(&'{') {
        return ident(i).into_iter().collect();
    }
    let mut out = Vec::new();
    let mut depth = 0;
    let mut member = i + 1;
    for (j, &c) in code.iter().enumerate().skip(i) {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                out.extend(ident(member));
                member = j + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// The spans (from `mod`, to its closing brace) of the inline modules `mod name { … }`.
fn inline_modules(code: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for i in 0..code.len() {
        if !starts_word(code, i) || !code[i..].starts_with(&['m', 'o', 'd', ' ']) {
            continue;
        }
        let name = skip_space(code, i + 4);
        let end_of_name = name + code[name..].iter().take_while(|&&c| is_ident(c)).count();
        let open = skip_space(code, end_of_name);
        if end_of_name == name || code.get(open) != Some(&'{') {
            continue;
        }
        let mut depth = 0;
        for (j, &c) in code.iter().enumerate().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        spans.push((i, j));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    spans
}

/// `text` with comments, string literals (plain, byte and raw) and character literals
/// replaced by spaces, newlines kept: what is left is code, whose braces balance.
pub fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = c.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in &mut out[from..to.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && next == Some('*') {
            let (mut j, mut depth) = (i + 2, 1);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(hashes) = raw_string_at(&c, i) {
            let mut j = i + 2 + hashes;
            while j < c.len()
                && !(c[j] == '"'
                    && c[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&x| x == '#')
                        .count()
                        == hashes)
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c[i] == '\'' && next == Some('\\') {
            // An escaped character: '\n', '\'', '\u{1F600}' (the escaped one may be a quote).
            let end = c[i + 3..]
                .iter()
                .position(|&x| x == '\'')
                .map_or(c.len(), |p| i + 4 + p);
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            // A character: 'x', '"', '{' (a lifetime `'a` has no closing quote).
            blank(&mut out, i, i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// If a raw string (`r"…"`, `r#"…"#`, `br"…"`) starts at the `r` at `i`: its number of `#`.
fn raw_string_at(c: &[char], i: usize) -> Option<usize> {
    if c[i] != 'r' || (i > 0 && is_ident(c[i - 1]) && c[i - 1] != 'b') {
        return None;
    }
    let hashes = c[i + 1..].iter().take_while(|&&x| x == '#').count();
    (c.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

/// Every `.rs` file under src/, as (path under the package, text), in path order.
fn read_src() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join("src"), root, &mut out);
    out
}

#[test]
fn src_imports_only_its_own_layer_or_below() {
    let files = read_src();
    assert!(files.len() > 10, "read src/: {} files", files.len());
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "{} imports against the layers (LAYERS in tests/suite/layers.rs):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The checker itself, on small made-up files.
#[test]
fn the_layer_checker_reports_upward_imports_with_their_line() {
    let f = |path: &str, text: &str| (path.to_string(), text.to_string());
    let files = [
        // Downward, sideways within a layer, and within one top-level module: all fine.
        f(
            "src/render/mod.rs",
            "use crate::event::Event;\nuse crate::rule::Level;\nuse crate::render::text::x;\n",
        ),
        f("src/source/cpu.rs", "use crate::rule::Level;\nuse super::Sampler;\n"),
        // Modules that do not exist yet, below: fine.
        f("src/event.rs", "use crate::util::base64;\nuse crate::clock::now;\n"),
        // Upward: reported with the line of the import.
        f(
            "src/render/template.rs",
            "//! Templates.\n\nuse crate::config::Webhook;\nuse std::fmt;\n",
        ),
        // A group: each member on its own line; `self` and a deeper group.
        f(
            "src/rule/eval.rs",
            "use crate::{\n    metric::Sample,\n    deliver::{Mode, Stats},\n    self,\n};\n",
        ),
        // A path in an expression, and `$crate` in a macro.
        f(
            "src/deliver/alertmanager.rs",
            "fn f() {\n    let x = crate::service::now_ms();\n}\nmacro_rules! m { () => { $crate::cli::main() } }\n",
        ),
        // `super` climbing to the crate root, from a file and from an inline module.
        f("src/source/mod.rs", "use super::config::Config;\n"),
        f(
            "src/metric.rs",
            "#[cfg(test)]\nmod tests {\n    use super::super::render::Ctx;\n    use super::Metric;\n}\n",
        ),
        f(
            "src/render/text.rs",
            "mod tests {\n    use super::super::Ctx;\n    use super::super::super::route::Route;\n}\n",
        ),
        // Comments, doc comments, strings and characters are not code.
        f(
            "src/log.rs",
            "// use crate::service;\n/// see crate::config::Config\n/* crate::cli */\nconst A: &str = \"crate::service::x\";\nconst B: &str = r#\"use crate::cli; \"quoted\" }\"#;\nconst C: char = '{';\nfn g<'a>(s: &'a str) -> &'a str { s }\nuse crate::limits::MAX;\n",
        ),
        // The top layer imports anything.
        f("src/cli.rs", "use crate::{config, service, render, deliver};\n"),
        // A top-level module without a layer, in two files: reported once.
        f("src/alert/mod.rs", "use crate::event::Event;\n"),
        f("src/alert/table.rs", "use crate::service::Agent;\n"),
        // Not Rust: ignored.
        f("src/README", "use crate::service;\n"),
    ];
    let got = check(&files);
    let want = [
        "src/render/template.rs:3: render imports config (layer 6 above layer 3)",
        "src/rule/eval.rs:3: rule imports deliver (layer 5 above layer 2)",
        "src/deliver/alertmanager.rs:2: deliver imports service (layer 7 above layer 5)",
        "src/deliver/alertmanager.rs:4: deliver imports cli (layer 8 above layer 5)",
        "src/source/mod.rs:1: source imports config (layer 6 above layer 2)",
        "src/metric.rs:3: metric imports render (layer 3 above layer 1)",
        "src/render/text.rs:3: render imports route (layer 4 above layer 3)",
        "src/alert/mod.rs: module alert has no layer in LAYERS",
    ];
    assert_eq!(got, want, "got:\n{}", got.join("\n"));
}

#[test]
fn every_module_is_in_one_layer() {
    let mut seen: Vec<&str> = Vec::new();
    for layer in LAYERS {
        for m in layer {
            assert!(!seen.contains(m), "{m} is in two layers");
            seen.push(m);
        }
    }
    assert_eq!(layer_of("util"), Some(0));
    assert_eq!(layer_of("render"), Some(3));
    assert_eq!(layer_of("lib"), Some(8));
    assert_eq!(layer_of("nosuch"), None);
}

#[test]
fn comments_and_literals_are_blanked_and_lines_kept() {
    let text = "a // b\n\"c\\\"d\" 'e' '\\n' '\\'' r#\"f\"g\"# 'h: x /* i /* j */ k */ z\n";
    let got = code_only(text);
    assert_eq!(got.lines().count(), text.lines().count());
    let kept: String = got.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(kept, "a 'h: x z");
}
