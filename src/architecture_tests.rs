//! Checks of the crate's shape, read from its own sources: the top-level modules depend on
//! each other without a cycle (`config → podman`, `executor → {config, podman, state, gitlab}`,
//! `tui → …`, `cli` on top), and production files and functions stay short enough to read.
//! Test code (`tests.rs`, `#[cfg(test)] mod …`) does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest production file and function, in lines (issue 15's limits).
const MAX_FILE_LINES: usize = 900;
const MAX_FN_LINES: usize = 120;

/// Over the limits today, each with its length then: the list may only shrink. A file or
/// function that grows past its entry, or a new one over the limit, fails the test; one that
/// got under the limit must leave the list.
const KNOWN_LONG_FILES: &[(&str, usize)] = &[];
const KNOWN_LONG_FNS: &[(&str, &str, usize)] = &[];

struct Source {
    /// Relative to the crate root, with `/`.
    path: String,
    /// The production lines: without `#[cfg(test)]` modules.
    lines: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate's production sources (the in-container agent is its own crate).
fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("src/agent/")
            || rel.ends_with("/tests.rs")
            || rel.contains("/tests/")
            || rel.ends_with("_tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        out.push(Source {
            path: rel,
            lines: production_lines(&text),
        });
    }
    out
}

/// `text` without its `#[cfg(test)]` modules.
fn production_lines(text: &str) -> Vec<String> {
    let all: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let next = all.get(i + 1).map(|n| n.trim_start()).unwrap_or("");
        let is_mod = next.starts_with("mod ")
            || next.starts_with("pub mod ")
            || next.starts_with("pub(crate) mod ");
        if all[i].trim() == "#[cfg(test)]" && is_mod && next.ends_with('{') {
            let indent = &all[i][..all[i].len() - all[i].trim_start().len()];
            let close = format!("{indent}}}");
            i = (i + 2..all.len())
                .find(|&j| all[j].trim_end() == close)
                .map_or(all.len(), |j| j + 1);
            continue;
        }
        out.push(all[i].to_string());
        i += 1;
    }
    out
}

/// The top-level module a file belongs to (`src/executor/run.rs` → `executor`).
fn top_module(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The top-level modules named by `crate::…` paths in `code`, grouped imports included
/// (`use crate::{a, b::c}`).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `$crate::`, `foo_crate::`, `x::crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            for it in items {
                let name: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Top-level module → the top-level modules its production code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources() {
        let Some(m) = top_module(&s.path) else {
            continue;
        };
        let code: String = s
            .lines
            .iter()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let deps = g.entry(m.clone()).or_default();
        for r in crate_refs(&code) {
            if r != m {
                deps.insert(r);
            }
        }
    }
    g
}

/// A cycle in `g`, as the modules along it, if there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut done, &mut Vec::new()))
}

/// Each function with a body: (name, first line, length in lines). rustfmt's layout makes a
/// body end at the first `}` alone at the `fn` line's indentation.
fn functions(lines: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let mut words = t.split_whitespace().peekable();
        while words.peek().is_some_and(|w| {
            w.starts_with("pub") || matches!(*w, "async" | "const" | "unsafe" | "extern" | "\"C\"")
        }) {
            words.next();
        }
        if words.next() != Some("fn") {
            continue;
        }
        let Some(name) = words.next().map(|w| {
            w.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        }) else {
            continue;
        };
        // the line that opens the body; a declaration (`;`) or a one-line body has none
        let Some(open) = (i..lines.len()).find(|&j| {
            let e = lines[j].trim_end();
            e.ends_with('{') || e.ends_with(';')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open..lines.len()).find(|&j| lines[j].trim_end() == close) {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = module_graph();
    // the check sees the edges it is meant to see
    assert!(g["executor"].contains("podman"), "{g:?}");
    assert!(g["app"].contains("tui"), "{g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!(
            "the top-level modules depend on each other in a cycle: {}\n(the whole graph: {g:#?})",
            c.join(" → ")
        );
    }
}

#[test]
fn the_cycle_check_finds_cycles_and_grouped_imports() {
    let refs = crate_refs("use crate::{config::Config, podman::{args, Podman}};\nx::crate::y;");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["config".to_string(), "podman".to_string()]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}

#[test]
fn test_modules_do_not_count_as_production_code() {
    let text = "fn a() {}\n#[cfg(test)]\npub mod fixtures {\n    fn f() {}\n}\nfn b() {}\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(production_lines(text), ["fn a() {}", "fn b() {}"]);
}

#[test]
fn the_function_length_count_follows_rustfmts_layout() {
    let code: Vec<String> = "pub fn a(\n    x: u8,\n) -> u8 {\n    x\n}\nfn decl();\n    pub(crate) async fn b() {\n        {\n        }\n    }\nfn c() {}\n"
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        functions(&code),
        vec![("a".to_string(), 1, 5), ("b".to_string(), 7, 4)]
    );
}

#[test]
fn production_files_and_functions_stay_within_the_limits() {
    let mut problems = Vec::new();
    let mut seen_files = BTreeSet::new();
    let mut seen_fns = BTreeSet::new();
    for s in sources() {
        let n = s.lines.len();
        let known = KNOWN_LONG_FILES.iter().find(|(p, _)| *p == s.path);
        match known {
            Some((_, was)) => {
                seen_files.insert(s.path.clone());
                if n > *was {
                    problems.push(format!("{} grew to {n} lines (was {was})", s.path));
                } else if n <= MAX_FILE_LINES {
                    problems.push(format!(
                        "{} is {n} lines now: remove it from KNOWN_LONG_FILES",
                        s.path
                    ));
                }
            }
            None if n > MAX_FILE_LINES => problems.push(format!(
                "{} has {n} production lines (at most {MAX_FILE_LINES})",
                s.path
            )),
            None => {}
        }
        // one entry per name: the longest function of that name in the file
        let mut longest: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (name, line, len) in functions(&s.lines) {
            let e = longest.entry(name).or_insert((line, len));
            if len > e.1 {
                *e = (line, len);
            }
        }
        for (name, (line, len)) in longest {
            let known = KNOWN_LONG_FNS
                .iter()
                .find(|(p, f, _)| *p == s.path && *f == name);
            match known {
                Some((_, _, was)) => {
                    seen_fns.insert((s.path.clone(), name.clone()));
                    if len > *was {
                        problems.push(format!(
                            "{}:{line} fn {name} grew to {len} lines (was {was})",
                            s.path
                        ));
                    } else if len <= MAX_FN_LINES {
                        problems.push(format!(
                            "{}:{line} fn {name} is {len} lines now: remove it from KNOWN_LONG_FNS",
                            s.path
                        ));
                    }
                }
                None if len > MAX_FN_LINES => problems.push(format!(
                    "{}:{line} fn {name} is {len} lines (at most {MAX_FN_LINES})",
                    s.path
                )),
                None => {}
            }
        }
    }
    for (p, f, _) in KNOWN_LONG_FNS {
        if !seen_fns.contains(&(p.to_string(), f.to_string())) {
            problems.push(format!(
                "{p}: fn {f} is gone: remove it from KNOWN_LONG_FNS"
            ));
        }
    }
    for (p, _) in KNOWN_LONG_FILES {
        if !seen_files.contains(*p) {
            problems.push(format!("{p} is gone: remove it from KNOWN_LONG_FILES"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_command_line_module_knows_clap_and_it_knows_little_else() {
    let knows_clap: Vec<String> = sources()
        .into_iter()
        .filter(|s| !s.path.starts_with("src/cli/"))
        .filter(|s| {
            s.lines
                .iter()
                .any(|l| l.contains("clap::") || l.contains("use clap") || l.contains("clap_"))
        })
        .map(|s| s.path)
        .collect();
    assert!(
        knows_clap.is_empty(),
        "clap outside src/cli/ (the command line and its arguments are defined there): {knows_clap:?}"
    );
    let g = module_graph();
    let cli: Vec<&String> = g["cli"].iter().collect();
    assert_eq!(cli, ["names"], "src/cli/ depends on: {cli:?}");
}
