//! GitLab's `spec: inputs` header and `$[[ inputs.NAME | function ]]` interpolation, as
//! GitLab's `Ci::Config::Interpolation` does it (gitlab-org/gitlab, read for this module):
//!
//! * A file whose first YAML document is a mapping with `spec` has a header; its content is
//!   the last of its first three documents. A file without a header is not interpolated, and
//!   giving it inputs is an error.
//! * Inputs are checked against their spec (type, `options`, `regex`; a default is checked
//!   too), then every string of the content — mapping keys included, `!reference` lists not —
//!   has its blocks replaced. A string that is exactly one block takes the input's typed
//!   value (an array inside a list is spliced into it); in a longer string the value is
//!   written as Ruby would (`true`, `1`, `["a", "b"]`).
//! * Functions: `expand_vars`, `truncate(offset,length)`, `posix_escape`, at most three.
//!
//! Messages keep GitLab's wording, so they can be searched for. Pure: no IO.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

/// `spec:inputs:NAME` keys GitLab knows.
const INPUT_KEYS: &[&str] = &[
    "default",
    "description",
    "options",
    "regex",
    "type",
    "rules",
];
/// `spec` keys GitLab knows.
const SPEC_KEYS: &[&str] = &["inputs", "include", "component", "description"];
/// At most this many functions in one block.
const MAX_FUNCTIONS: usize = 3;
/// An access expression longer than this (bytes) is refused.
const MAX_ACCESS_BYTES: usize = 1024;
/// Errors shown at once, as GitLab shows them.
const MAX_ERRORS: usize = 3;

/// The header and content of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `spec:` of the header, if the file has one.
    pub spec: Option<Value>,
    pub content: Value,
}

/// The documents of a file as GitLab reads them: blank documents dropped; a header when the
/// first document is a mapping with `spec` and there is another; the content is then the
/// last of the first three documents, else the first document (the others are ignored, as
/// GitLab ignores them).
pub fn split(docs: Vec<Value>) -> Split {
    let mut docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).take(3).collect();
    let header = docs.len() >= 2 && docs[0].as_object().is_some_and(|m| m.contains_key("spec"));
    if header {
        let content = docs.pop().unwrap_or(Value::Null);
        let spec = docs
            .swap_remove(0)
            .as_object_mut()
            .and_then(|m| m.remove("spec"));
        // a header with other keys is refused by `check_header`
        Split {
            spec: Some(spec.unwrap_or(Value::Null)),
            content,
        }
    } else {
        Split {
            spec: None,
            content: docs.into_iter().next().unwrap_or(Value::Null),
        }
    }
}

/// The inputs of a file: its spec's inputs with `given` checked against them and defaults
/// filled in. `Err` holds GitLab's messages (the first three, joined).
pub fn resolve(
    spec: Option<&Value>,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let Some(spec) = spec else {
        if given.is_empty() {
            return Ok(Map::new());
        }
        return Err(
            "Given inputs not defined in the `spec` section of the included configuration file"
                .to_string(),
        );
    };
    let specs = input_specs(spec)?;
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| !specs.iter().any(|(name, _)| name == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!("unknown input arguments: {}", unknown.join(", ")));
    }
    let mut errors = Vec::new();
    let mut values = Map::new();
    for (name, input) in &specs {
        let default = input.get("default");
        let provided = given.get(name);
        if provided.is_none() && default.is_none() {
            errors.push(format!(
                "`{name}` input: required value has not been provided"
            ));
            continue;
        }
        let mut value = None;
        for (what, v) in [("default", default), ("provided", provided)] {
            let Some(v) = v else { continue };
            match check(input, what, v) {
                Ok(coerced) => value = Some(coerced),
                Err(e) => errors.push(format!("`{name}` input: {e}")),
            }
        }
        if let Some(v) = value {
            values.insert(name.clone(), v);
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        errors.truncate(MAX_ERRORS);
        Err(errors.join(", "))
    }
}

/// One `spec:inputs:NAME` mapping.
type InputSpec = Map<String, Value>;

/// `spec:` checked (GitLab's header validation, its lowercase messages) and its inputs in
/// order.
fn input_specs(spec: &Value) -> Result<Vec<(String, InputSpec)>, String> {
    let spec = match spec {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        _ => return Err("header:spec config should be a hash".to_string()),
    };
    let unknown: Vec<&str> = spec
        .keys()
        .filter(|k| !SPEC_KEYS.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "header:spec config contains unknown keys: {}",
            unknown.join(", ")
        ));
    }
    if spec.contains_key("include") {
        return Err(
            "spec:include (inputs defined in other files) is not supported by pogo exec: \
             define the inputs in the file itself"
                .to_string(),
        );
    }
    let inputs = match spec.get("inputs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("header:spec:inputs config should be a hash".to_string()),
    };
    let mut out = Vec::new();
    for (name, input) in inputs {
        let at = format!("header:spec:inputs:{}", name.to_lowercase());
        let input = match input {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err(format!("{at} config should be a hash")),
        };
        let unknown: Vec<&str> = input
            .keys()
            .filter(|k| !INPUT_KEYS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "{at} config contains unknown keys: {}",
                unknown.join(", ").to_lowercase()
            ));
        }
        if input.contains_key("rules") {
            return Err(format!(
                "spec:inputs:{name}:rules is not supported by pogo exec: give the input a \
                 `default` (or `options`) instead"
            ));
        }
        match input.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t))
                if ["array", "boolean", "number", "string"].contains(&t.as_str()) => {}
            Some(other) => {
                return Err(format!(
                    "{at} input type unknown value: {}",
                    ruby_to_s(other).to_lowercase()
                ))
            }
        }
        if !matches!(input.get("options"), None | Some(Value::Array(_))) {
            return Err(format!("{at} options should be an array"));
        }
        if !matches!(input.get("regex"), None | Some(Value::String(_))) {
            return Err(format!("{at} regex should be a string"));
        }
        out.push((name.clone(), input));
    }
    Ok(out)
}

/// `v` (the `what` value: "default" or "provided") checked against `input` and coerced to
/// its type, or the message after "`NAME` input: ".
fn check(input: &Map<String, Value>, what: &str, v: &Value) -> Result<Value, String> {
    let kind = input
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let options = input.get("options").and_then(Value::as_array);
    let regex = input.get("regex").and_then(Value::as_str);
    // number, boolean and array values may come as JSON text (from the command line)
    let parsed = || match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        _ => v.clone(),
    };
    let not_in_options = |shown: &str, the: &str| {
        format!("`{shown}` cannot be used because it is not in the list of {the}allowed options")
    };
    match kind {
        "number" => {
            let n = parsed();
            if !n.is_number() {
                return Err(format!("{what} value is not a number"));
            }
            if regex.is_some() {
                return Err("RegEx validation can only be used with string inputs".to_string());
            }
            if let Some(options) = options {
                let f = n.as_f64();
                if !options
                    .iter()
                    .any(|o| o.as_f64().is_some() && o.as_f64() == f)
                {
                    return Err(not_in_options(&ruby_to_s(&n), "the "));
                }
            }
            Ok(n)
        }
        "boolean" | "array" => {
            let b = parsed();
            let ok = if kind == "boolean" {
                b.is_boolean()
            } else {
                b.is_array()
            };
            if !ok {
                let a = if kind == "boolean" {
                    "a boolean"
                } else {
                    "an array"
                };
                return Err(format!("{what} value is not {a}"));
            }
            if options.is_some() {
                return Err("Options can only be used with string and number inputs".to_string());
            }
            if regex.is_some() {
                return Err("RegEx validation can only be used with string inputs".to_string());
            }
            Ok(b)
        }
        _ => {
            let s = ruby_to_s(v);
            if let Some(options) = options {
                if !options.iter().any(|o| ruby_to_s(o) == s) {
                    return Err(not_in_options(&s, ""));
                }
            }
            if let Some(pattern) = regex {
                let re =
                    Regex::new(pattern).map_err(|_| "invalid regular expression".to_string())?;
                if !re.is_match(&s) {
                    return Err(format!(
                        "{what} value does not match required RegEx pattern"
                    ));
                }
            }
            Ok(Value::String(s))
        }
    }
}

/// What interpolation may read.
pub struct Context<'a> {
    pub inputs: &'a Map<String, Value>,
    /// For `expand_vars`: the variables GitLab allows there (predefined ones, and the
    /// pipeline's own from `--var`); none is masked locally.
    pub variables: &'a HashMap<String, String>,
}

fn block_regex() -> Regex {
    // GitLab's: the data starts and ends with a non-blank and stays on one line
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by the tests
    Regex::new(r"\$\[\[\s*(\S.*?\S)\s*\]\]").unwrap()
}

/// `content` with every block replaced. `Err`: GitLab's message for the first bad block.
pub fn interpolate(content: Value, ctx: &Context<'_>) -> Result<Value, String> {
    let re = block_regex();
    let mut cache: HashMap<String, Value> = HashMap::new();
    walk(content, ctx, &re, &mut cache)
}

fn walk(
    v: Value,
    ctx: &Context<'_>,
    re: &Regex,
    cache: &mut HashMap<String, Value>,
) -> Result<Value, String> {
    match v {
        Value::String(s) => string(&s, ctx, re, cache),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let was_string = item.is_string();
                match walk(item, ctx, re, cache)? {
                    // an array input as a whole list item joins the list
                    Value::Array(inner) if was_string => out.extend(inner),
                    other => out.push(other),
                }
            }
            Ok(Value::Array(out))
        }
        Value::Object(m) if m.contains_key(super::reference::MARKER) && m.len() == 1 => {
            // GitLab leaves `!reference` lists as they are
            Ok(Value::Object(m))
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match string(&k, ctx, re, cache)? {
                    Value::String(s) => s,
                    other => ruby_to_s(&other),
                };
                let value = walk(v, ctx, re, cache)?;
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other),
    }
}

fn string(
    s: &str,
    ctx: &Context<'_>,
    re: &Regex,
    cache: &mut HashMap<String, Value>,
) -> Result<Value, String> {
    if !s.contains("$[[") {
        return Ok(Value::String(s.to_string()));
    }
    let matches: Vec<regex::Captures> = re.captures_iter(s).collect();
    for c in &matches {
        let block = &c[0];
        if cache.contains_key(block) || c[1].starts_with("matrix.") {
            continue;
        }
        let value = block_value(&c[1], ctx)?;
        cache.insert(block.to_string(), value);
    }
    if let [only] = matches.as_slice() {
        if only[0].len() == s.len() {
            return Ok(cache
                .get(&only[0])
                .cloned()
                .unwrap_or_else(|| Value::String(s.to_string())));
        }
    }
    let out = re.replace_all(s, |c: &regex::Captures| match cache.get(&c[0]) {
        Some(v) => ruby_to_s(v),
        None => c[0].to_string(),
    });
    Ok(Value::String(out.into_owned()))
}

/// The value of one block's data (`inputs.NAME | f | g`).
fn block_value(data: &str, ctx: &Context<'_>) -> Result<Value, String> {
    let mut parts = data.split('|').map(str::trim);
    let access = parts.next().unwrap_or("");
    let functions: Vec<&str> = parts.collect();
    if functions.len() > MAX_FUNCTIONS {
        return Err("too many functions in interpolation block".to_string());
    }
    let mut value = lookup(access, ctx)?;
    for f in functions {
        value = apply(f, value, ctx)?;
    }
    Ok(value)
}

fn lookup(access: &str, ctx: &Context<'_>) -> Result<Value, String> {
    if access.len() > MAX_ACCESS_BYTES {
        return Err("maximum interpolation expression size exceeded".to_string());
    }
    let segments: Vec<&str> = access.splitn(5, '.').collect();
    let segments: Vec<&str> = match segments.as_slice() {
        // Ruby's split drops a trailing empty part: `inputs.` is one segment
        [.., ""] => segments[..segments.len() - 1].to_vec(),
        _ => segments,
    };
    if segments.len() < 2 {
        return Err("invalid interpolation access pattern".to_string());
    }
    let unknown = |k: &str| format!("unknown interpolation key: `{k}`");
    match segments[0] {
        "inputs" => {}
        "component" => {
            return Err(
                "component.* interpolation is for CI/CD components, which pogo exec cannot \
                 include"
                    .to_string(),
            )
        }
        other => return Err(unknown(other)),
    }
    let mut current = ctx
        .inputs
        .get(segments[1])
        .ok_or_else(|| unknown(segments[1]))?;
    for seg in &segments[2..] {
        current = current
            .as_object()
            .and_then(|m| m.get(*seg))
            .ok_or_else(|| unknown(seg))?;
    }
    Ok(current.clone())
}

fn apply(function: &str, value: Value, ctx: &Context<'_>) -> Result<Value, String> {
    let error = |name: &str, msg: &str| format!("error in `{name}` function: {msg}");
    let string_only = |name: &str| {
        error(
            name,
            &format!("invalid input type: {name} can only be used with string inputs"),
        )
    };
    #[allow(clippy::unwrap_used)] // a constant pattern
    let truncate = Regex::new(r"^truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)?$").unwrap();
    if function == "expand_vars" {
        let Value::String(s) = value else {
            return Err(string_only("expand_vars"));
        };
        return Ok(Value::String(expand_vars(&s, ctx.variables)));
    }
    if function == "posix_escape" {
        let Value::String(s) = value else {
            return Err(string_only("posix_escape"));
        };
        return Ok(Value::String(posix_escape(&s)));
    }
    if let Some(c) = truncate.captures(function) {
        let Value::String(s) = value else {
            return Err(string_only("truncate"));
        };
        let offset: usize = c[1].parse().unwrap_or(usize::MAX);
        let length: usize = c[2].parse().unwrap_or(usize::MAX);
        return Ok(Value::String(s.chars().skip(offset).take(length).collect()));
    }
    Err(format!(
        "no function matching `{function}`: check that the function name, arguments, and types are correct"
    ))
}

/// `$NAME`, `${NAME}` and `%NAME%` of known variables replaced, once (GitLab's
/// `ExpandVariables.expand_existing`); unknown ones stay as written.
pub fn expand_vars(s: &str, variables: &HashMap<String, String>) -> String {
    #[allow(clippy::unwrap_used)] // a constant pattern
    let re = Regex::new(
        r"\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|%([a-zA-Z_][a-zA-Z0-9_]*)%",
    )
    .unwrap();
    re.replace_all(s, |c: &regex::Captures| {
        let name = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map_or("", |m| m.as_str());
        variables
            .get(name)
            .cloned()
            .unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

/// Ruby's `Shellwords.shellescape`: `''` for an empty string; a backslash before every
/// character but `[A-Za-z0-9_-.,:+/@]` and newline; a newline as `'\n'`.
pub fn posix_escape(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("'\n'"),
            c if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

/// A value as Ruby's `to_s` writes it into a longer string: strings as they are, `nil` as
/// nothing, arrays and hashes in their `inspect` form.
pub fn ruby_to_s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => ruby_inspect(other),
    }
}

fn ruby_inspect(v: &Value) -> String {
    match v {
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(ruby_inspect)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{} => {}",
                    ruby_inspect(&Value::String(k.clone())),
                    ruby_inspect(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
