//! Registry credentials for a job's pulls, resolved like the Docker executor does
//! (gitlab-runner's `helpers/docker/auth`): per registry the first source that has one wins —
//!
//! 1. the job's `DOCKER_AUTH_CONFIG` variable (its `auths`),
//! 2. the runner's configured `auth_file` (the Docker executor's `~/.docker/config.json`),
//! 3. the registry credentials GitLab sends with the job (`credentials[]`, the job token for
//!    the project's own registry; `CI_REGISTRY`/`CI_REGISTRY_USER` + the job token when the
//!    description has none).
//!
//! The result is a podman auth file written per job (mode 0600, in pogo's private job
//! directory, removed at cleanup). No credential is ever put on a command line.
//! `credHelpers`/`credsStore` from a job are ignored: they would run programs on the host.

use super::response::{redacted_json_error, Credential};
use crate::secret::Secret;
use serde_json::{Map, Value};

/// Where an entry of the merged auth file came from (for the job log; never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    DockerAuthConfig,
    AuthFile,
    JobCredentials,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::DockerAuthConfig => "the job's DOCKER_AUTH_CONFIG",
            Source::AuthFile => "the runner's auth_file",
            Source::JobCredentials => "the job's GitLab registry credentials (job token)",
        }
    }
}

/// The job's own credentials, from its description and variables.
pub struct JobAuth<'a> {
    /// The `DOCKER_AUTH_CONFIG` variable's value (or file contents).
    pub docker_auth_config: Option<&'a str>,
    pub credentials: &'a [Credential],
    /// `CI_REGISTRY`, `CI_REGISTRY_USER` and `CI_REGISTRY_PASSWORD` (else the job token).
    pub ci_registry: Option<(String, String, Secret)>,
}

impl JobAuth<'_> {
    /// Does the job bring anything that could be a credential?
    pub fn has_any(&self) -> bool {
        self.docker_auth_config
            .is_some_and(|t| !t.trim().is_empty())
            || self
                .credentials
                .iter()
                .any(|c| c.kind.eq_ignore_ascii_case("registry"))
            || self.ci_registry.is_some()
    }
}

/// What the job's pulls use.
#[derive(Debug)]
pub struct Merged {
    /// `None`: the job brings no credentials; the configured auth file is used as it is.
    pub file: Option<MergedFile>,
    /// Things the job log should say (an unusable DOCKER_AUTH_CONFIG, ignored helpers).
    pub warnings: Vec<String>,
}

/// A merged auth file: its JSON text (holds secrets: write it 0600, never log it) and which
/// registries came from the job.
pub struct MergedFile {
    pub json: String,
    pub registries: Vec<(String, Source)>,
}

impl std::fmt::Debug for MergedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedFile")
            .field("json", &"<redacted>")
            .field("registries", &self.registries)
            .finish()
    }
}

/// Why the configured auth file cannot be merged (the runner's problem: a system failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFileError(pub String);

/// Merge the job's credentials with the configured auth file's text.
pub fn merge(configured: Option<&str>, job: &JobAuth<'_>) -> Result<Merged, AuthFileError> {
    let mut warnings = Vec::new();
    let mut from_variable: Vec<(String, Value)> = Vec::new();
    if let Some(text) = job.docker_auth_config.filter(|t| !t.trim().is_empty()) {
        match docker_auth_config_entries(text) {
            Ok((entries, ignored)) => {
                from_variable = entries;
                if ignored {
                    warnings.push(
                        "DOCKER_AUTH_CONFIG: credHelpers and credsStore are ignored (they would run \
                         programs on the runner's host); put the registry's login in `auths`"
                            .to_string(),
                    );
                }
            }
            Err(why) => warnings.push(format!(
                "DOCKER_AUTH_CONFIG is ignored: {why}; it must be a Docker config.json such as \
                 {{\"auths\":{{\"registry.example.com\":{{\"auth\":\"<base64 of user:password>\"}}}}}}"
            )),
        }
    }
    let mut from_job: Vec<(String, Value)> = Vec::new();
    for c in job
        .credentials
        .iter()
        .filter(|c| c.kind.eq_ignore_ascii_case("registry"))
    {
        if let Some(key) = registry_key(&c.url) {
            from_job.push((key, auth_value(&c.username, c.password.expose())));
        }
    }
    if let Some((registry, user, password)) = &job.ci_registry {
        if let Some(key) = registry_key(registry) {
            if !from_job.iter().any(|(k, _)| *k == key) && !password.is_empty() {
                from_job.push((key, auth_value(user, password.expose())));
            }
        }
    }
    if from_variable.is_empty() && from_job.is_empty() {
        return Ok(Merged {
            file: None,
            warnings,
        });
    }

    let mut root: Map<String, Value> = match configured {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(AuthFileError(
                    "it is not a JSON object like {\"auths\": {...}}".to_string(),
                ))
            }
            Err(e) => return Err(AuthFileError(redacted_json_error(&e))),
        },
    };
    let configured_auths = match root.remove("auths") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(AuthFileError(
                "its \"auths\" is not a JSON object".to_string(),
            ))
        }
    };
    let mut auths = Map::new();
    let mut registries = Vec::new();
    let mut add = |key: String, value: Value, source: Source| {
        if !auths.contains_key(&key) {
            if source != Source::AuthFile {
                registries.push((key.clone(), source));
            }
            auths.insert(key, value);
        }
    };
    for (k, v) in from_variable {
        add(k, v, Source::DockerAuthConfig);
    }
    for (k, v) in configured_auths {
        // the runner's own keys stay as they are (podman reads them today)
        add(k, v, Source::AuthFile);
    }
    for (k, v) in from_job {
        add(k, v, Source::JobCredentials);
    }
    root.insert("auths".to_string(), Value::Object(auths));
    let json = serde_json::to_string(&Value::Object(root))
        .map_err(|e| AuthFileError(format!("cannot encode the merged auth file: {e}")))?;
    Ok(Merged {
        file: Some(MergedFile { json, registries }),
        warnings,
    })
}

/// The `auths` of a `DOCKER_AUTH_CONFIG` value, normalised to podman's form, and whether it
/// had credential helpers (ignored). The error never quotes the value.
fn docker_auth_config_entries(text: &str) -> Result<(Vec<(String, Value)>, bool), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| redacted_json_error(&e))?;
    let Value::Object(root) = v else {
        return Err("it is not a JSON object".to_string());
    };
    let helpers = root.contains_key("credHelpers") || root.contains_key("credsStore");
    let mut out = Vec::new();
    match root.get("auths") {
        None => {}
        Some(Value::Object(auths)) => {
            for (registry, entry) in auths {
                let Some(key) = registry_key(registry) else {
                    return Err(format!(
                        "{:?} in \"auths\" is not a registry",
                        registry.chars().take(80).collect::<String>()
                    ));
                };
                let Value::Object(entry) = entry else {
                    return Err(format!("the entry for {key} is not a JSON object"));
                };
                let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
                let value = if !text("auth").is_empty() {
                    let mut m = Map::new();
                    m.insert("auth".into(), Value::String(text("auth").to_string()));
                    Value::Object(m)
                } else if !text("username").is_empty() {
                    auth_value(text("username"), text("password"))
                } else if !text("identitytoken").is_empty() {
                    let mut m = Map::new();
                    m.insert(
                        "identitytoken".into(),
                        Value::String(text("identitytoken").to_string()),
                    );
                    Value::Object(m)
                } else {
                    return Err(format!(
                        "the entry for {key} has no \"auth\" (nor username and password)"
                    ));
                };
                out.push((key, value));
            }
        }
        Some(_) => return Err("its \"auths\" is not a JSON object".to_string()),
    }
    Ok((out, helpers))
}

fn auth_value(user: &str, password: &str) -> Value {
    let mut m = Map::new();
    m.insert(
        "auth".into(),
        Value::String(base64(format!("{user}:{password}").as_bytes())),
    );
    Value::Object(m)
}

/// A registry reference as an auth file key, the way gitlab-runner normalises it: an
/// `http(s)://` URL becomes its host (`index.docker.io` is `docker.io`); otherwise a trailing
/// `/` and an image tag go, the host part is lower-cased. `None` for something that cannot
/// be a registry.
pub fn registry_key(reference: &str) -> Option<String> {
    let r = reference.trim();
    let lower = r.to_ascii_lowercase();
    let key = if let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        let host = rest.split('/').next().unwrap_or("");
        if host == "index.docker.io" {
            "docker.io".to_string()
        } else {
            host.to_string()
        }
    } else {
        let path = r.trim_end_matches('/');
        let path = match (path.rfind(':'), path.rfind('/')) {
            (Some(t), Some(p)) if t > p => &path[..t],
            _ => path,
        };
        match path.split_once('/') {
            Some((host, rest)) => format!("{}/{rest}", host.to_ascii_lowercase()),
            None => path.to_ascii_lowercase(),
        }
    };
    let ok = !key.is_empty()
        && key.len() <= 512
        && !key.starts_with(['/', '-', '.'])
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'));
    ok.then_some(key)
}

/// Standard base64 with padding (what Docker's `auth` field holds).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(char::from(T[(n >> 18) as usize & 63]));
        out.push(char::from(T[(n >> 12) as usize & 63]));
        out.push(if chunk.len() > 1 {
            char::from(T[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            char::from(T[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(url: &str, user: &str, pass: &str) -> Credential {
        Credential {
            kind: "registry".into(),
            url: url.into(),
            username: user.into(),
            password: Secret::new(pass),
        }
    }

    fn auths(m: &Merged) -> Map<String, Value> {
        let v: Value = serde_json::from_str(&m.file.as_ref().unwrap().json).unwrap();
        v["auths"].as_object().unwrap().clone()
    }

    #[test]
    fn base64_matches_the_reference() {
        assert_eq!(base64(b"pogo:pogo-secret"), "cG9nbzpwb2dvLXNlY3JldA==");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn registry_keys_are_normalised_like_gitlab_runner() {
        assert_eq!(
            registry_key("https://index.docker.io/v1/").as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            registry_key("http://Registry.Example.com:5000/v2/").as_deref(),
            Some("registry.example.com:5000")
        );
        assert_eq!(
            registry_key("Registry.Example.com/Group/img:tag").as_deref(),
            Some("registry.example.com/Group/img")
        );
        assert_eq!(
            registry_key("127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000")
        );
        for bad in ["", "a b", "--authfile", "x\ny", "/etc"] {
            assert_eq!(registry_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_job_credentials_the_configured_file_is_used_as_is() {
        let job = JobAuth {
            docker_auth_config: None,
            credentials: &[],
            ci_registry: None,
        };
        let m = merge(Some("not even json"), &job).unwrap();
        assert!(m.file.is_none() && m.warnings.is_empty());
    }

    #[test]
    fn docker_auth_config_wins_over_the_auth_file_which_wins_over_job_credentials() {
        let configured = r#"{"auths":{"a.example":{"auth":"RILE="},"b.example":{"auth":"RILEB"}},"credHelpers":{"c.example":"x"}}"#;
        let creds = [
            cred("b.example", "gitlab-ci-token", "tok"),
            cred("d.example", "gitlab-ci-token", "tok"),
        ];
        let job = JobAuth {
            docker_auth_config: Some(
                r#"{"auths":{"https://a.example/v1/":{"username":"u","password":"p"}},"credHelpers":{"e":"evil"}}"#,
            ),
            credentials: &creds,
            ci_registry: None,
        };
        let m = merge(Some(configured), &job).unwrap();
        let a = auths(&m);
        let file = m.file.as_ref().unwrap();
        assert_eq!(a["a.example"]["auth"], base64(b"u:p"), "variable first");
        assert_eq!(a["b.example"]["auth"], "RILEB", "then the runner's file");
        assert_eq!(
            a["d.example"]["auth"],
            base64(b"gitlab-ci-token:tok"),
            "then the job's"
        );
        let v: Value = serde_json::from_str(&file.json).unwrap();
        assert_eq!(
            v["credHelpers"]["c.example"], "x",
            "the runner's helpers stay"
        );
        assert!(
            !file.json.contains("evil"),
            "a job's credential helpers never reach podman"
        );
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert_eq!(
            file.registries,
            vec![
                ("a.example".to_string(), Source::DockerAuthConfig),
                ("d.example".to_string(), Source::JobCredentials)
            ]
        );
    }

    #[test]
    fn ci_registry_and_the_job_token_are_used_when_credentials_has_none() {
        let job = JobAuth {
            docker_auth_config: None,
            credentials: &[],
            ci_registry: Some((
                "127.0.0.1:5000".into(),
                "gitlab-ci-token".into(),
                Secret::new("glcbt-x"),
            )),
        };
        let m = merge(None, &job).unwrap();
        assert_eq!(
            auths(&m)["127.0.0.1:5000"]["auth"],
            base64(b"gitlab-ci-token:glcbt-x")
        );
    }

    #[test]
    fn a_broken_docker_auth_config_is_ignored_with_a_warning_that_never_quotes_it() {
        let job = JobAuth {
            docker_auth_config: Some(r#"{"auths": "s3cr3t-value"}"#),
            credentials: &[],
            ci_registry: None,
        };
        let m = merge(None, &job).unwrap();
        assert!(m.file.is_none());
        assert!(m.warnings[0].contains("DOCKER_AUTH_CONFIG is ignored"));
        assert!(!m.warnings[0].contains("s3cr3t"));
        let job = JobAuth {
            docker_auth_config: Some("{\"auths\":{\"x\":{\"auth\":\"s3cr3t-value"),
            ..job
        };
        let m = merge(None, &job).unwrap();
        assert!(!m.warnings[0].contains("s3cr3t"), "{:?}", m.warnings);
    }

    #[test]
    fn a_broken_configured_file_is_the_runners_error_and_is_not_quoted() {
        let creds = [cred("r.example", "u", "p")];
        let job = JobAuth {
            docker_auth_config: None,
            credentials: &creds,
            ci_registry: None,
        };
        let e = merge(Some("{\"auths\": \"s3cr3t\"}"), &job).unwrap_err();
        assert!(!e.0.contains("s3cr3t"), "{e:?}");
        let e = merge(Some("[1"), &job).unwrap_err();
        assert!(e.0.contains("line 1"), "{e:?}");
    }
}
