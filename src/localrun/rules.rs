//! Whether GitLab would put a job in the pipeline: `rules:` (with `if`, `exists`, `changes`,
//! `when`, `allow_failure`, `variables`), `only`/`except`, and `workflow: rules`. Pure: what
//! the repository says (its files, what changed) comes in through [`Facts`].
//!
//! The condition language is GitLab's CI/CD variable expressions: `$VAR` (true when set and
//! not empty), `==` and `!=` against a string, another variable or `null`, `=~` and `!~`
//! against a `/regex/` (RE2 syntax, `i` flag) or a variable holding one, `&&` before `||`,
//! parentheses. As on GitLab, a variable's value is used as written (nested `$VARS` in it are
//! not expanded).

use std::collections::HashMap;

use serde_json::Value;

use super::pipeline::{AllowFailure, Need};
use crate::driver::Variable;

/// A parsed `rules:if` (or `only: variables`) expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Var(String),
    Str(String),
    Null,
    /// `/pattern/flags`.
    Regex(String),
    Cmp(Box<Expr>, Op, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Match,
    NoMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Var(String),
    Str(String),
    Regex(String),
    Null,
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

fn tokens(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '$' => {
                let braced = chars.get(i + 1) == Some(&'{');
                let start = if braced { i + 2 } else { i + 1 };
                let mut end = start;
                while end < chars.len() && ident(chars[end]) {
                    end += 1;
                }
                if end == start {
                    return Err(format!("a `$` without a variable name at {i}"));
                }
                if braced && chars.get(end) != Some(&'}') {
                    return Err(format!("`${{` without its `}}` at {i}"));
                }
                out.push(Token::Var(chars[start..end].iter().collect()));
                i = if braced { end + 1 } else { end };
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|d| *d == c)
                    .ok_or_else(|| format!("a string opened at {i} is not closed"))?;
                out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '/' => {
                // up to the next unescaped '/', then flags
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '/' {
                    if chars[j] == '\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!("a /regex/ opened at {i} is not closed"));
                }
                let mut k = j + 1;
                while k < chars.len() && chars[k].is_ascii_alphabetic() {
                    k += 1;
                }
                out.push(Token::Regex(chars[i..k].iter().collect()));
                i = k;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            _ if two == "==" => {
                out.push(Token::Op(Op::Eq));
                i += 2;
            }
            _ if two == "!=" => {
                out.push(Token::Op(Op::Ne));
                i += 2;
            }
            _ if two == "=~" => {
                out.push(Token::Op(Op::Match));
                i += 2;
            }
            _ if two == "!~" => {
                out.push(Token::Op(Op::NoMatch));
                i += 2;
            }
            _ if two == "&&" => {
                out.push(Token::And);
                i += 2;
            }
            _ if two == "||" => {
                out.push(Token::Or);
                i += 2;
            }
            _ if chars[i..].iter().take(4).collect::<String>() == "null"
                && !chars.get(i + 4).is_some_and(|c| ident(*c)) =>
            {
                out.push(Token::Null);
                i += 4;
            }
            other => return Err(format!("unexpected '{other}' at {i}")),
        }
    }
    Ok(out)
}

/// Parse an expression; the error names what is wrong.
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = tokens(src)?;
    let mut pos = 0;
    let e = or(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!(
            "unexpected {:?} after a complete expression",
            toks[pos]
        ));
    }
    Ok(e)
}

fn or(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let mut left = and(t, pos)?;
    while t.get(*pos) == Some(&Token::Or) {
        *pos += 1;
        left = Expr::Or(Box::new(left), Box::new(and(t, pos)?));
    }
    Ok(left)
}

fn and(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let mut left = comparison(t, pos)?;
    while t.get(*pos) == Some(&Token::And) {
        *pos += 1;
        left = Expr::And(Box::new(left), Box::new(comparison(t, pos)?));
    }
    Ok(left)
}

fn comparison(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let left = operand(t, pos)?;
    if let Some(Token::Op(op)) = t.get(*pos) {
        *pos += 1;
        let right = operand(t, pos)?;
        return Ok(Expr::Cmp(Box::new(left), *op, Box::new(right)));
    }
    Ok(left)
}

fn operand(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let tok = t.get(*pos).ok_or("the expression ends too early")?;
    *pos += 1;
    Ok(match tok {
        Token::Var(v) => Expr::Var(v.clone()),
        Token::Str(s) => Expr::Str(s.clone()),
        Token::Regex(r) => Expr::Regex(r.clone()),
        Token::Null => Expr::Null,
        Token::Open => {
            let e = or(t, pos)?;
            if t.get(*pos) != Some(&Token::Close) {
                return Err("a '(' is not closed".to_string());
            }
            *pos += 1;
            e
        }
        other => return Err(format!("unexpected {other:?}")),
    })
}

/// A value in an expression: a string, or nothing (an unset variable, `null`).
fn value(e: &Expr, vars: &HashMap<String, String>) -> Option<String> {
    match e {
        Expr::Var(v) => vars.get(v).cloned(),
        Expr::Str(s) | Expr::Regex(s) => Some(s.clone()),
        _ => None,
    }
}

/// `/pattern/flags` as a regex (RE2-like syntax, as GitLab's).
fn regex(literal: &str) -> Result<regex::Regex, String> {
    let body = literal
        .strip_prefix('/')
        .and_then(|r| r.rsplit_once('/'))
        .ok_or_else(|| format!("{literal:?} is not a /regex/"))?;
    let (pattern, flags) = body;
    let mut b = regex::RegexBuilder::new(pattern);
    b.case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'));
    b.build().map_err(|e| format!("{literal}: {e}"))
}

/// Evaluate an expression with these variables.
pub fn eval(e: &Expr, vars: &HashMap<String, String>) -> Result<bool, String> {
    Ok(match e {
        Expr::Var(v) => vars.get(v).is_some_and(|s| !s.is_empty()),
        Expr::Str(s) => !s.is_empty(),
        Expr::Null => false,
        Expr::Regex(_) => true,
        Expr::And(a, b) => eval(a, vars)? && eval(b, vars)?,
        Expr::Or(a, b) => eval(a, vars)? || eval(b, vars)?,
        Expr::Cmp(a, op, b) => {
            let left = value(a, vars);
            match op {
                Op::Eq | Op::Ne => {
                    let right = value(b, vars);
                    (left == right) == (*op == Op::Eq)
                }
                Op::Match | Op::NoMatch => {
                    // the pattern: a /regex/, or a variable that holds one
                    let pattern = match b.as_ref() {
                        Expr::Regex(r) => Some(r.clone()),
                        Expr::Var(_) => value(b, vars).filter(|p| p.starts_with('/')),
                        _ => None,
                    };
                    let matched = match (left, pattern) {
                        (Some(l), Some(p)) => regex(&p)?.is_match(&l),
                        _ => false,
                    };
                    matched == (*op == Op::Match)
                }
            }
        }
    })
}

/// `when:` of a rule (or of the job, when the rule says none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleWhen {
    OnSuccess,
    Manual,
    Always,
    OnFailure,
    Delayed,
    Never,
}

impl RuleWhen {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "on_success" => Self::OnSuccess,
            "manual" => Self::Manual,
            "always" => Self::Always,
            "on_failure" => Self::OnFailure,
            "delayed" => Self::Delayed,
            "never" => Self::Never,
            other => {
                return Err(format!(
                    "when: '{other}' is not one of on_success, manual, always, on_failure, \
                     delayed, never"
                ))
            }
        })
    }

    /// As written in `.gitlab-ci.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnSuccess => "on_success",
            Self::Manual => "manual",
            Self::Always => "always",
            Self::OnFailure => "on_failure",
            Self::Delayed => "delayed",
            Self::Never => "never",
        }
    }
}

/// `changes:` of a rule: paths (globs) and what to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    pub paths: Vec<String>,
    pub compare_to: Option<String>,
}

/// One entry of `rules:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub condition: Option<(String, Expr)>,
    pub exists: Option<Vec<String>>,
    /// `exists: {project, ref}`: the paths are looked for in that project at that ref
    /// (variables expanded when the rule is evaluated).
    pub exists_in: Option<(String, Option<String>)>,
    pub changes: Option<Changes>,
    pub when: Option<RuleWhen>,
    pub allow_failure: Option<AllowFailure>,
    pub variables: Vec<Variable>,
    /// `needs:` that replace the job's when this rule matches.
    pub needs: Option<Vec<Need>>,
}

/// `only:` or `except:`: refs, variables expressions, changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refs {
    pub refs: Vec<String>,
    pub variables: Vec<(String, Expr)>,
    pub changes: Option<Vec<String>>,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("{what}: every entry must be a string")),
            })
            .collect(),
        _ => Err(format!("{what}: must be a string or a list of strings")),
    }
}

/// How the keys of a rule that are a job's own keywords are read: the pipeline parser's own
/// `allow_failure`, `variables` and `needs` (an error where the rules are not a job's).
pub struct RuleKeys<'a> {
    pub allow_failure: &'a dyn Fn(&Value) -> Result<AllowFailure, String>,
    pub variables: &'a dyn Fn(&Value) -> Result<Vec<Variable>, String>,
    pub needs: &'a mut dyn FnMut(&Value) -> Result<Vec<Need>, String>,
}

/// `rules:` as written, the keys that are a job's keywords read with `keys`.
pub fn parse_rules(v: &Value, keys: &mut RuleKeys<'_>) -> Result<Vec<Rule>, String> {
    let Value::Array(_) = v else {
        return Err("must be a list of rules".to_string());
    };
    // `- !reference [.x, rules]` puts a list in the list: GitLab flattens it
    fn flat<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
            other => out.push(other),
        }
    }
    let mut items = Vec::new();
    flat(v, &mut items);
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(format!("rule {i}: must be a mapping (if:, when:, …)"));
        };
        let mut rule = Rule::default();
        for (key, val) in m {
            let ctx = |e: String| format!("rule {i}: {key}: {e}");
            match key.as_str() {
                "if" => {
                    let Value::String(src) = val else {
                        return Err(ctx("must be a string".into()));
                    };
                    rule.condition = Some((src.clone(), parse(src).map_err(ctx)?));
                }
                "when" => {
                    let Value::String(s) = val else {
                        return Err(ctx("must be a string".into()));
                    };
                    rule.when = Some(RuleWhen::parse(s).map_err(ctx)?);
                }
                "allow_failure" => {
                    rule.allow_failure = Some((keys.allow_failure)(val).map_err(ctx)?)
                }
                "variables" => rule.variables = (keys.variables)(val).map_err(ctx)?,
                "needs" => {
                    rule.needs = Some(match val {
                        Value::Null => Vec::new(),
                        v => (keys.needs)(v).map_err(ctx)?,
                    })
                }
                "exists" => {
                    rule.exists = Some(match val {
                        Value::Object(e) => {
                            let text = |key: &str| match e.get(key) {
                                None => Ok(None),
                                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                                Some(_) => Err(ctx(format!("{key}: must be a string"))),
                            };
                            let (project, git_ref) = (text("project")?, text("ref")?);
                            if git_ref.is_some() && project.is_none() {
                                return Err(ctx("ref: needs project:".into()));
                            }
                            rule.exists_in = project.map(|p| (p, git_ref));
                            strings(e.get("paths").unwrap_or(&Value::Null), "paths").map_err(ctx)?
                        }
                        other => strings(other, "exists").map_err(ctx)?,
                    })
                }
                "changes" => {
                    rule.changes = Some(match val {
                        Value::Object(c) => Changes {
                            paths: strings(c.get("paths").unwrap_or(&Value::Null), "paths")
                                .map_err(ctx)?,
                            compare_to: match c.get("compare_to") {
                                None => None,
                                Some(Value::String(s)) => Some(s.clone()),
                                Some(_) => return Err(ctx("compare_to: must be a string".into())),
                            },
                        },
                        other => Changes {
                            paths: strings(other, "changes").map_err(ctx)?,
                            compare_to: None,
                        },
                    })
                }
                // these change nothing about whether or how the job runs locally
                "start_in" | "interruptible" => {}
                other => {
                    return Err(format!(
                        "rule {i}: '{other}' is not a rules: key (if, changes, exists, when, \
                         allow_failure, variables, needs, start_in, interruptible)"
                    ))
                }
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// `only:`/`except:` (a list of refs, or a mapping with `refs`, `variables`, `changes`).
pub fn parse_refs(v: &Value, unsupported: &mut dyn FnMut(&str)) -> Result<Refs, String> {
    match v {
        Value::Object(m) => {
            let mut r = Refs::default();
            for (key, val) in m {
                match key.as_str() {
                    "refs" => r.refs = strings(val, "refs")?,
                    "variables" => {
                        for src in strings(val, "variables")? {
                            let e = parse(&src).map_err(|e| format!("variables: {e}"))?;
                            r.variables.push((src, e));
                        }
                    }
                    "changes" => r.changes = Some(strings(val, "changes")?),
                    "kubernetes" => unsupported("only/except: kubernetes"),
                    other => return Err(format!("'{other}' is not an only/except key")),
                }
            }
            Ok(r)
        }
        other => Ok(Refs {
            refs: strings(other, "only/except")?,
            ..Refs::default()
        }),
    }
}

/// What the repository says, for `exists` and `changes`.
pub struct Facts<'a> {
    /// Every file of the commit the pipeline runs for (paths relative to the project root).
    pub files: &'a [String],
    /// The files this push changes; `None` when that cannot be known (a tag, no git): then
    /// `changes` is true, as on GitLab for pipelines without a push to compare.
    pub changed: Option<&'a [String]>,
    /// The files changed against another ref (`changes: compare_to`).
    pub changed_against: &'a dyn Fn(&str) -> Option<Vec<String>>,
    /// The files of another project at a ref (`exists: project`, `ref`; `None`: its
    /// default), or why they cannot be seen.
    pub project_files: &'a ProjectFiles<'a>,
    pub branch: Option<&'a str>,
    pub tag: Option<&'a str>,
    /// `CI_PIPELINE_SOURCE` (`push` for `pogo exec`).
    pub source: &'a str,
}

/// The files of a project at a ref (`None`: its default), or why they cannot be seen.
pub type ProjectFiles<'a> = dyn Fn(&str, Option<&str>) -> Result<Vec<String>, String> + 'a;

/// `$VAR` and `${VAR}` in `s` replaced by their values (unset: empty), as GitLab expands
/// `exists`, `changes` and `compare_to` (the driver's expansion, gitlab-runner's rules).
pub(crate) fn expand_vars(s: &str, vars: &HashMap<String, String>) -> String {
    let list: Vec<Variable> = vars
        .iter()
        .map(|(k, v)| Variable::new(k.clone(), v.clone()))
        .collect();
    crate::driver::job::expand(s, &list)
}

/// Does any of `files` match any of the glob `patterns` (GitLab's `fnmatch` with `**`)?
fn any_matches(patterns: &[String], files: &[String], vars: &HashMap<String, String>) -> bool {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let p = expand_vars(p, vars);
        let p = p.trim_start_matches("./");
        // `dir/` means everything under it; `dir/**/*` is GitLab's usual spelling of that
        let p = if p.ends_with('/') {
            format!("{p}**")
        } else {
            p.to_string()
        };
        if let Ok(g) = globset::GlobBuilder::new(&p)
            .literal_separator(true)
            .build()
        {
            b.add(g);
        }
    }
    let Ok(set) = b.build() else { return false };
    files.iter().any(|f| set.is_match(f))
}

/// How a job enters the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// In the pipeline, with this `when`, and (from the matching rule) an `allow_failure` and
    /// variables that override the job's.
    In {
        when: RuleWhen,
        allow_failure: Option<AllowFailure>,
        variables: Vec<Variable>,
        /// The matching rule's `needs:`, which replace the job's.
        needs: Option<Vec<Need>>,
        why: String,
    },
    /// Not in the pipeline, and why.
    Out(String),
}

/// Evaluate `rules:` for a job whose own `when` is `job_when`.
pub fn eval_rules(
    rules: &[Rule],
    job_when: RuleWhen,
    vars: &HashMap<String, String>,
    facts: &Facts<'_>,
) -> Result<Decision, String> {
    for (i, rule) in rules.iter().enumerate() {
        if let Some((src, e)) = &rule.condition {
            if !eval(e, vars).map_err(|e| format!("rule {i}: if: {src}: {e}"))? {
                continue;
            }
        }
        if let Some(paths) = &rule.exists {
            let other;
            let files = match &rule.exists_in {
                None => facts.files,
                Some((project, git_ref)) => {
                    let project = expand_vars(project, vars);
                    let git_ref = git_ref.as_ref().map(|r| expand_vars(r, vars));
                    other = (facts.project_files)(&project, git_ref.as_deref())
                        .map_err(|e| format!("rule {i}: exists: project {project}: {e}"))?;
                    &other
                }
            };
            if !any_matches(paths, files, vars) {
                continue;
            }
        }
        if let Some(c) = &rule.changes {
            let changed = match &c.compare_to {
                Some(r) => (facts.changed_against)(&expand_vars(r, vars)),
                None => facts.changed.map(<[String]>::to_vec),
            };
            if let Some(changed) = changed {
                if !any_matches(&c.paths, &changed, vars) {
                    continue;
                }
            }
        }
        let what = match &rule.condition {
            Some((src, _)) => format!("rule {i} (if: {src})"),
            None => format!("rule {i}"),
        };
        let when = rule.when.unwrap_or(job_when);
        if when == RuleWhen::Never {
            return Ok(Decision::Out(format!("{what} says when: never")));
        }
        return Ok(Decision::In {
            when,
            allow_failure: rule.allow_failure.clone(),
            variables: rule.variables.clone(),
            needs: rule.needs.clone(),
            why: format!("{what} matched"),
        });
    }
    Ok(Decision::Out("no rule matched".to_string()))
}

/// The pipeline source (`CI_PIPELINE_SOURCE`) an `only`/`except` keyword stands for.
fn source_of_keyword(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "api" => "api",
        "chat" => "chat",
        "external" => "external",
        "external_pull_requests" => "external_pull_request_event",
        "merge_requests" => "merge_request_event",
        "pipelines" => "pipeline",
        "pushes" => "push",
        "schedules" => "schedule",
        "triggers" => "trigger",
        "web" => "web",
        _ => return None,
    })
}

/// Does `only`/`except` entry `refs` name this pipeline (by keyword, branch or tag name, or
/// `/regex/`)?
fn refs_match(
    refs: &Refs,
    vars: &HashMap<String, String>,
    facts: &Facts<'_>,
) -> Result<bool, String> {
    let name = facts.branch.or(facts.tag);
    let mut any_ref = refs.refs.is_empty();
    for r in &refs.refs {
        let hit = match (r.as_str(), source_of_keyword(r)) {
            ("branches", _) => facts.branch.is_some(),
            ("tags", _) => facts.tag.is_some(),
            (_, Some(source)) => source == facts.source,
            (p, _) if p.starts_with('/') => match name {
                Some(n) => regex(p)?.is_match(n),
                None => false,
            },
            // `branch@group/project`: the project part cannot be checked locally
            (p, _) => name == Some(p.split('@').next().unwrap_or(p)),
        };
        if hit {
            any_ref = true;
            break;
        }
    }
    if !any_ref {
        return Ok(false);
    }
    for (src, e) in &refs.variables {
        if !eval(e, vars).map_err(|e| format!("variables: {src}: {e}"))? {
            // GitLab: `only: variables` needs any one expression to be true
            if refs
                .variables
                .iter()
                .all(|(_, e)| !eval(e, vars).unwrap_or(false))
            {
                return Ok(false);
            }
            break;
        }
    }
    if let (Some(paths), Some(changed)) = (&refs.changes, facts.changed) {
        if !any_matches(paths, changed, vars) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Evaluate `only`/`except` (GitLab's default `only` is branches and tags).
pub fn eval_only_except(
    only: Option<&Refs>,
    except: Option<&Refs>,
    vars: &HashMap<String, String>,
    facts: &Facts<'_>,
) -> Result<Decision, String> {
    let default_only = Refs {
        refs: vec!["branches".into(), "tags".into()],
        ..Refs::default()
    };
    if !refs_match(only.unwrap_or(&default_only), vars, facts)? {
        return Ok(Decision::Out("only: does not match this pipeline".into()));
    }
    if let Some(e) = except {
        if refs_match(e, vars, facts)? {
            return Ok(Decision::Out("except: matches this pipeline".into()));
        }
    }
    Ok(Decision::In {
        when: RuleWhen::OnSuccess,
        allow_failure: None,
        needs: None,
        variables: Vec::new(),
        why: if only.is_none() && except.is_none() {
            "no rules: GitLab's default (branches and tags)".into()
        } else {
            "only/except match".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn is(src: &str, v: &HashMap<String, String>) -> bool {
        eval(&parse(src).unwrap(), v).unwrap()
    }

    /// GitLab's documented examples of CI/CD variable expressions.
    #[test]
    fn the_condition_language_behaves_as_gitlab_documents() {
        let v = vars(&[
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("EMPTY", ""),
            ("RELEASE", "release-1.2"),
            ("PATTERN", "/^release-.*$/"),
            ("OTHER", "main"),
        ]);
        for (src, want) in [
            ("$CI_COMMIT_BRANCH == \"main\"", true),
            ("$CI_COMMIT_BRANCH == 'main'", true),
            ("$CI_COMMIT_BRANCH != \"main\"", false),
            ("$CI_COMMIT_BRANCH == $OTHER", true),
            ("${CI_COMMIT_BRANCH} == \"main\"", true),
            ("$UNSET == null", true),
            ("$EMPTY == null", false),
            ("$EMPTY == \"\"", true),
            ("$UNSET", false),
            ("$EMPTY", false),
            ("$CI_COMMIT_BRANCH", true),
            ("$RELEASE =~ /^release-/", true),
            ("$RELEASE =~ /^RELEASE-/i", true),
            ("$RELEASE !~ /^release-/", false),
            ("$UNSET =~ /x/", false),
            ("$UNSET !~ /x/", true),
            ("$RELEASE =~ $PATTERN", true),
            (
                "$CI_COMMIT_BRANCH == \"x\" || $CI_PIPELINE_SOURCE == \"push\"",
                true,
            ),
            (
                "$CI_COMMIT_BRANCH == \"x\" && $CI_PIPELINE_SOURCE == \"push\"",
                false,
            ),
            // && before ||
            ("$A || $CI_COMMIT_BRANCH && $UNSET", false),
            ("($CI_COMMIT_BRANCH || $A) && $CI_PIPELINE_SOURCE", true),
            ("$CI_PIPELINE_SOURCE == \"merge_request_event\"", false),
        ] {
            assert_eq!(is(src, &v), want, "{src}");
        }
        for bad in ["$A ==", "(\"x\"", "$A = \"x\"", "$A =~ /x", "\"open"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    fn facts<'a>(
        files: &'a [String],
        changed: Option<&'a [String]>,
        branch: Option<&'a str>,
        tag: Option<&'a str>,
    ) -> Facts<'a> {
        Facts {
            files,
            changed,
            changed_against: &|_| None,
            project_files: &|p, r| match (p, r) {
                ("group/lib", Some("v1")) => Ok(vec!["Makefile".into()]),
                ("group/lib", None) => Ok(vec!["Makefile".into(), "Cargo.toml".into()]),
                _ => Err(format!("pass --project-dir {p}=PATH")),
            },
            branch,
            tag,
            source: "push",
        }
    }

    #[test]
    fn exists_with_a_project_looks_at_that_projects_files_at_its_ref() {
        let r = rules(
            "- exists: {paths: [Cargo.toml], project: $LIB, ref: $LIB_REF}\n  when: manual\n- exists: {paths: [Cargo.toml], project: group/lib}\n",
        );
        assert_eq!(
            r[0].exists_in,
            Some(("$LIB".into(), Some("$LIB_REF".into())))
        );
        let files = vec!["README.md".to_string()];
        let f = facts(&files, None, Some("main"), None);
        let vars = vars(&[("LIB", "group/lib"), ("LIB_REF", "v1")]);
        // v1 has no Cargo.toml, the default branch has: the second rule matches
        match eval_rules(&r, RuleWhen::OnSuccess, &vars, &f).unwrap() {
            Decision::In { when, why, .. } => {
                assert_eq!(when, RuleWhen::OnSuccess);
                assert_eq!(why, "rule 1 matched");
            }
            other => panic!("{other:?}"),
        }
        let e = eval_rules(
            &rules("- exists: {paths: [x], project: other/p}\n"),
            RuleWhen::OnSuccess,
            &vars,
            &f,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "rule 0: exists: project other/p: pass --project-dir other/p=PATH"
        );
        let v: Value = serde_yaml::from_str("- exists: {paths: [x], ref: main}\n").unwrap();
        let e = parse_rules(
            &v,
            &mut RuleKeys {
                allow_failure: &|_| Ok(AllowFailure::Yes),
                variables: &|_| Ok(vec![]),
                needs: &mut |_| Ok(vec![]),
            },
        )
        .unwrap_err();
        assert!(e.contains("ref: needs project:"), "{e}");
    }

    fn rules(yaml: &str) -> Vec<Rule> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        parse_rules(
            &v,
            &mut RuleKeys {
                allow_failure: &|_| Ok(AllowFailure::Yes),
                variables: &|_| Ok(vec![Variable::new("X", "1")]),
                needs: &mut |_| Ok(vec![]),
            },
        )
        .unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_leaves_the_job_out() {
        let r = rules(
            "- if: $CI_COMMIT_TAG\n  when: never\n- if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  when: manual\n  allow_failure: true\n  variables: {X: '1'}\n",
        );
        let files = vec!["Cargo.toml".to_string()];
        let main = vars(&[("CI_COMMIT_BRANCH", "main"), ("CI_DEFAULT_BRANCH", "main")]);
        let feature = vars(&[("CI_COMMIT_BRANCH", "feat"), ("CI_DEFAULT_BRANCH", "main")]);
        let tag = vars(&[("CI_COMMIT_TAG", "v1"), ("CI_DEFAULT_BRANCH", "main")]);
        let f = facts(&files, None, Some("main"), None);
        match eval_rules(&r, RuleWhen::OnSuccess, &main, &f).unwrap() {
            Decision::In {
                when,
                allow_failure,
                variables,
                ..
            } => {
                assert_eq!(when, RuleWhen::Manual);
                assert_eq!(allow_failure, Some(AllowFailure::Yes));
                assert_eq!(variables, vec![Variable::new("X", "1")]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(eval_rules(&r, RuleWhen::OnSuccess, &feature, &f).unwrap(), Decision::Out(w) if w == "no rule matched")
        );
        assert!(
            matches!(eval_rules(&r, RuleWhen::OnSuccess, &tag, &f).unwrap(), Decision::Out(w) if w.contains("when: never"))
        );
    }

    #[test]
    fn exists_and_changes_look_at_the_repository() {
        let files: Vec<String> = ["Dockerfile", "src/main.rs", "docs/a/b.md"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let changed: Vec<String> = vec!["docs/a/b.md".into()];
        let v = vars(&[]);
        let f = facts(&files, Some(&changed), Some("feat"), None);
        let on = |yaml: &str| {
            matches!(
                eval_rules(&rules(yaml), RuleWhen::OnSuccess, &v, &f).unwrap(),
                Decision::In { .. }
            )
        };
        assert!(on("- exists: [Dockerfile]\n"));
        assert!(on("- exists: ['src/**/*.rs']\n"));
        assert!(!on("- exists: ['*.rs']\n"), "* does not cross directories");
        assert!(!on("- exists: [Makefile]\n"));
        assert!(on("- changes: ['docs/**/*']\n"));
        assert!(on("- changes: ['docs/']\n"));
        assert!(!on("- changes: ['src/**/*']\n"));
        // without a push to compare (a tag), changes is true as on GitLab
        let tag = facts(&files, None, None, Some("v1"));
        assert!(matches!(
            eval_rules(
                &rules("- changes: ['src/**/*']\n"),
                RuleWhen::OnSuccess,
                &v,
                &tag
            )
            .unwrap(),
            Decision::In { .. }
        ));
    }

    #[test]
    fn only_and_except_follow_refs_variables_and_gitlabs_default() {
        let files: Vec<String> = Vec::new();
        let v = vars(&[("DEPLOY", "yes")]);
        let main = facts(&files, None, Some("main"), None);
        let tag = facts(&files, None, None, Some("v1.0"));
        let refs = |y: &str| parse_refs(&serde_yaml::from_str(y).unwrap(), &mut |_| {}).unwrap();
        let run = |only: Option<&Refs>, except: Option<&Refs>, f: &Facts<'_>| {
            matches!(
                eval_only_except(only, except, &v, f).unwrap(),
                Decision::In { .. }
            )
        };
        assert!(run(None, None, &main) && run(None, None, &tag));
        assert!(run(Some(&refs("[main]")), None, &main));
        assert!(!run(Some(&refs("[main]")), None, &tag));
        assert!(run(Some(&refs("[tags]")), None, &tag));
        assert!(!run(Some(&refs("[tags]")), None, &main));
        assert!(run(Some(&refs("['/^v\\d/']")), None, &tag));
        assert!(!run(None, Some(&refs("[main]")), &main));
        assert!(run(
            Some(&refs(
                "{refs: [branches], variables: ['$DEPLOY == \"yes\"']}"
            )),
            None,
            &main
        ));
        assert!(!run(
            Some(&refs("{variables: ['$DEPLOY == \"no\"']}")),
            None,
            &main
        ));
        assert!(!run(Some(&refs("[schedules]")), None, &main));
        // the keywords name pipeline sources: `merge_requests` is `merge_request_event`
        let mr = Facts {
            source: "merge_request_event",
            branch: None,
            ..facts(&files, None, None, None)
        };
        assert!(run(Some(&refs("[merge_requests]")), None, &mr));
        assert!(
            !run(None, None, &mr),
            "the default only: is branches and tags"
        );
        let schedule = Facts {
            source: "schedule",
            ..facts(&files, None, Some("main"), None)
        };
        assert!(run(Some(&refs("[schedules]")), None, &schedule));
        assert!(run(Some(&refs("[pushes]")), None, &main));
        assert!(!run(Some(&refs("[pushes]")), None, &schedule));
        assert!(!run(None, Some(&refs("[schedules]")), &schedule));
    }
}
