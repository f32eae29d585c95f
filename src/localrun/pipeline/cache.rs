//! `cache:` of a job or of `default:`: its key (written, or from files), paths, policy and
//! `when`.

use serde_json::Value;

use super::parser::Parser;
use super::values::{get, kind, scalar, string_list, upload_when};
use super::{KeyFiles, DEFAULT_CACHE_KEY};
use crate::driver::{Cache, CachePolicy};

impl Parser {
    /// `cache:`: one mapping or a list of them (`[]` or `{}`: no cache).
    pub(super) fn caches(&mut self, v: &Value) -> Result<Vec<(Cache, Option<KeyFiles>)>, String> {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            Value::Object(m) if m.is_empty() => Vec::new(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let c = self.cache(item).map_err(|e| {
                if matches!(v, Value::Array(_)) {
                    format!("entry {}: {e}", i + 1)
                } else {
                    e
                }
            })?;
            out.push(c);
        }
        Ok(out)
    }

    fn cache(&mut self, v: &Value) -> Result<(Cache, Option<KeyFiles>), String> {
        let Value::Object(m) = v else {
            return Err(format!(
                "must be a mapping with `key:` and `paths:`, found {}",
                kind(v)
            ));
        };
        for key in m.keys() {
            if !matches!(key.as_str(), "key" | "paths" | "policy" | "when") {
                self.ignore(format!("cache:{key}"));
            }
        }
        let mut c = Cache {
            key: DEFAULT_CACHE_KEY.to_string(),
            ..Cache::default()
        };
        let mut key_files = None;
        match get(m, "key") {
            None => {}
            Some(Value::Object(k)) => {
                let prefix = get(k, "prefix").and_then(scalar);
                let (files, commits) = match (get(k, "files"), get(k, "files_commits")) {
                    (Some(f), None) => (f, false),
                    (None, Some(f)) => (f, true),
                    _ => {
                        return Err(
                            "key: a mapping needs `files` or `files_commits` (one of them)".into(),
                        )
                    }
                };
                let files = string_list(files).map_err(|e| format!("key: files: {e}"))?;
                if files.is_empty() || files.len() > 2 {
                    return Err("key: files: give one or two files (GitLab's limit)".into());
                }
                if let Some(extra) = k
                    .keys()
                    .find(|x| !["files", "files_commits", "prefix"].contains(&x.as_str()))
                {
                    return Err(format!("key: '{extra}' is not a key: key (files, prefix)"));
                }
                if let Some(p) = &prefix {
                    c.key = format!("{p}-{DEFAULT_CACHE_KEY}");
                }
                key_files = Some(KeyFiles {
                    files,
                    prefix,
                    commits,
                });
            }
            Some(other) => {
                c.key = scalar(other).ok_or_else(|| {
                    format!("key: must be a string or a mapping, found {}", kind(other))
                })?;
            }
        }
        if let Some(p) = get(m, "paths") {
            c.paths = string_list(p).map_err(|e| format!("paths: {e}"))?;
        }
        c.policy = match get(m, "policy") {
            None => CachePolicy::PullPush,
            Some(Value::String(s)) => match s.as_str() {
                "pull-push" => CachePolicy::PullPush,
                "pull" => CachePolicy::Pull,
                "push" => CachePolicy::Push,
                other => {
                    return Err(format!(
                        "policy: '{other}' is not supported; use pull, push or pull-push"
                    ))
                }
            },
            Some(other) => return Err(format!("policy: must be a string, found {}", kind(other))),
        };
        c.when = upload_when(get(m, "when")).map_err(|e| format!("when: {e}"))?;
        Ok((c, key_files))
    }
}
