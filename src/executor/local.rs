//! `POGO_LOCAL_MOUNTS`: host directories `pogo exec` has `prepare` mount into the job
//! container (the project's sources, and `.pogo/` for cache and artifacts).
//!
//! Only `pogo exec` sets it, in the environment of the phases it runs. gitlab-runner hands
//! job variables to the phases as `CUSTOM_ENV_*`, so a job cannot set it; on a real runner
//! it is absent and nothing changes.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The environment variable: a JSON array of [`LocalMount`].
pub const LOCAL_MOUNTS: &str = "POGO_LOCAL_MOUNTS";

/// One host path to mount into the job container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalMount {
    pub host: String,
    pub container: String,
    #[serde(default)]
    pub readonly: bool,
}

impl LocalMount {
    /// The value of `podman run --volume`.
    pub fn volume_arg(&self) -> String {
        let ro = if self.readonly { ":ro" } else { "" };
        format!("{}:{}{ro}", self.host, self.container)
    }
}

/// Why a path cannot be handed to `podman run --volume`, if it cannot.
fn check_path(which: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{which} path '{path}' is not absolute"));
    }
    if path.contains([':', ',']) || path.chars().any(char::is_control) {
        return Err(format!(
            "{which} path '{path}' contains ':', ',' or a control character, which podman \
             cannot mount; use a directory without them"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{which} path '{path}' contains '..'"));
    }
    Ok(())
}

/// Parses and checks the value of [`LOCAL_MOUNTS`].
pub fn parse(json: &str) -> Result<Vec<LocalMount>, String> {
    let mounts: Vec<LocalMount> = serde_json::from_str(json).map_err(|e| {
        format!(
            "{LOCAL_MOUNTS} is not a JSON list of {{\"host\", \"container\", \"readonly\"}}: {e}"
        )
    })?;
    for m in &mounts {
        check_path("host", &m.host).map_err(|e| format!("{LOCAL_MOUNTS}: {e}"))?;
        check_path("container", &m.container).map_err(|e| format!("{LOCAL_MOUNTS}: {e}"))?;
        if m.container == "/" {
            return Err(format!("{LOCAL_MOUNTS}: cannot mount over '/'"));
        }
    }
    Ok(mounts)
}

/// Is this a `pogo exec` job (it set [`LOCAL_MOUNTS`])?
pub fn is_local(env: &HashMap<String, String>) -> bool {
    env.contains_key(LOCAL_MOUNTS)
}

/// The `--volume` values for the job container: none unless `pogo exec` set [`LOCAL_MOUNTS`].
/// A host path that does not exist is an error naming it.
pub fn volumes(env: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let Some(json) = env.get(LOCAL_MOUNTS) else {
        return Ok(Vec::new());
    };
    let mounts = parse(json)?;
    for m in &mounts {
        if std::fs::symlink_metadata(&m.host).is_err() {
            return Err(format!(
                "{LOCAL_MOUNTS}: host path '{}' does not exist",
                m.host
            ));
        }
    }
    Ok(mounts.iter().map(LocalMount::volume_arg).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mounts_become_volume_arguments() {
        let m = parse(
            r#"[{"host":"/p/.pogo/run-1/sources.tar","container":"/pogo-exec/sources.tar","readonly":true},
                {"host":"/p/.pogo/cache","container":"/pogo-exec/cache"}]"#,
        )
        .unwrap();
        let args: Vec<String> = m.iter().map(LocalMount::volume_arg).collect();
        assert_eq!(
            args,
            vec![
                "/p/.pogo/run-1/sources.tar:/pogo-exec/sources.tar:ro",
                "/p/.pogo/cache:/pogo-exec/cache"
            ]
        );
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn paths_podman_cannot_mount_are_refused_with_the_reason() {
        let one = |host: &str, container: &str| {
            parse(&format!(
                r#"[{{"host":{},"container":{}}}]"#,
                serde_json::to_string(host).unwrap(),
                serde_json::to_string(container).unwrap()
            ))
            .unwrap_err()
        };
        assert!(one("rel/dir", "/c").contains("host path 'rel/dir' is not absolute"));
        assert!(one("/a", "c").contains("container path 'c' is not absolute"));
        assert!(one("/a:b", "/c").contains("contains ':', ','"));
        assert!(one("/a", "/c,rw").contains("contains ':', ','"));
        assert!(one("/a\nb", "/c").contains("control character"));
        assert!(one("/a/../etc", "/c").contains("'..'"));
        assert!(one("/a", "/").contains("cannot mount over '/'"));
        let e = parse(r#"[{"host":"/a","container":"/c","options":"z"}]"#).unwrap_err();
        assert!(e.contains("unknown field `options`"), "{e}");
        let e = parse("not json").unwrap_err();
        assert!(e.starts_with("POGO_LOCAL_MOUNTS is not a JSON list"), "{e}");
    }

    #[test]
    fn without_the_variable_nothing_is_mounted_and_a_missing_host_path_is_named() {
        let mut env = HashMap::new();
        assert_eq!(volumes(&env).unwrap(), Vec::<String>::new());
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().display().to_string();
        env.insert(
            LOCAL_MOUNTS.to_string(),
            format!(r#"[{{"host":"{host}","container":"/x"}}]"#),
        );
        assert_eq!(volumes(&env).unwrap(), vec![format!("{host}:/x")]);
        env.insert(
            LOCAL_MOUNTS.to_string(),
            format!(r#"[{{"host":"{host}/gone","container":"/x"}}]"#),
        );
        assert!(volumes(&env).unwrap_err().contains("/gone' does not exist"));
    }
}
