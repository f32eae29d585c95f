//! GitLab's API as pogo uses it.
//!
//! * The one call the executor makes: the job's tags (`GET /job` with the job token).
//! * The runner registration API `pogo register`/`pogo unregister` use: `POST /runners/verify`
//!   (runner authentication token `glrt-…`), the legacy `POST /runners` (registration token),
//!   `DELETE /runners` and `DELETE /runners/managers`.

use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    #[error("GitLab answered HTTP {status} to GET {url} (job tags); {hint}")]
    Status {
        status: u16,
        url: String,
        hint: &'static str,
    },
    #[error("cannot reach GitLab at {url} to read the job's tags ({message}); check the runner's url and the network — the job will be retried")]
    Transport { url: String, message: String },
    #[error("GitLab's answer to GET {url} is not the expected JSON: {message}")]
    Body { url: String, message: String },
    #[error("CUSTOM_ENV_CI_API_V4_URL is not set, so pogo cannot ask GitLab for the job's tags")]
    NoApiUrl,
    #[error("GitLab's certificate at {url} is not trusted ({message}); with a private CA, set tls-ca-file in the runner's config.toml (gitlab-runner hands it to pogo as CI_SERVER_TLS_CA_FILE) or add the CA to this machine's store (update-ca-certificates)")]
    Untrusted { url: String, message: String },
    #[error("CI_SERVER_TLS_CA_FILE (the runner's tls-ca-file) is unusable: {0}; fix tls-ca-file in the runner's config.toml")]
    BadCaFile(String),
}

#[derive(Debug, Deserialize)]
struct JobInfo {
    #[serde(default)]
    tag_list: Vec<String>,
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "the job token was refused: the job may have finished or been canceled",
        404 => "check that the runner's url points at GitLab's API (CI_API_V4_URL)",
        500..=599 => "GitLab had a server error; the job will be retried",
        _ => "see GitLab's logs",
    }
}

/// `GET {api_url}/job` with header `JOB-TOKEN`; returns `tag_list`.
pub fn job_tags(
    api_url: &str,
    token: &Secret,
    extra_ca_pem: Option<&str>,
    timeout: Duration,
) -> Result<Vec<String>, GitlabError> {
    if api_url.is_empty() {
        return Err(GitlabError::NoApiUrl);
    }
    let url = format!("{}/job", api_url.trim_end_matches('/'));
    let agent = agent(&url, timeout, extra_ca_pem).map_err(GitlabError::BadCaFile)?;
    match agent
        .get(&url)
        .set("JOB-TOKEN", token.expose())
        .set("Accept", "application/json")
        .call()
    {
        Ok(resp) => resp
            .into_json::<JobInfo>()
            .map(|j| j.tag_list)
            .map_err(|e| GitlabError::Body {
                url,
                message: e.to_string(),
            }),
        Err(ureq::Error::Status(status, _)) => Err(GitlabError::Status {
            status,
            url,
            hint: hint(status),
        }),
        Err(ureq::Error::Transport(t)) => Err(match tls_error(&t) {
            Some(message) => GitlabError::Untrusted { url, message },
            None => GitlabError::Transport {
                url,
                message: match std::error::Error::source(&t) {
                    Some(cause) => format!("{}: {cause}", t.kind()),
                    None => t.kind().to_string(),
                },
            },
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Runner registration API
// ---------------------------------------------------------------------------------------------

/// Why talking to GitLab's runner API failed. Each message names the cause and what to do;
/// none contains a token.
#[derive(Debug, thiserror::Error)]
pub enum RunnerApiError {
    #[error("'{url}' is not a usable GitLab URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("TLS failure talking to {url}: {message}; check that the server speaks HTTPS there (use http:// if it does not) and that its certificate is valid for that name (a private CA: pass it with --tls-ca-file, or add it to this machine's store)")]
    Tls { url: String, message: String },
    #[error("the --tls-ca-file (tls-ca-file in config.toml) is unusable: {message}")]
    BadCaFile { message: String },
    #[error("cannot reach GitLab at {url}: {message}; check the URL, the network and that GitLab is running")]
    Unreachable { url: String, message: String },
    #[error("GitLab answered HTTP {status} to {method} {url}{}: {hint}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Status {
        status: u16,
        method: &'static str,
        url: String,
        detail: Option<String>,
        hint: String,
    },
    #[error("GitLab's answer to {method} {url} is not the expected JSON ({message}); is {url} really GitLab's API?")]
    Body {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("GitLab did not verify the runner: its answer to POST {url} has no runner id (\"Failed to verify the runner\"); use the runner authentication token GitLab showed when the runner was created")]
    NotVerified { url: String },
}

/// What GitLab hands back for a verified or newly registered runner.
#[derive(Debug, Clone)]
pub struct RunnerCredentials {
    pub id: u64,
    /// The token to write to config.toml.
    pub token: Secret,
    /// `token_expires_at` as GitLab sent it (RFC 3339), when it expires.
    pub token_expires_at: Option<String>,
}

/// The legacy registration's runner settings (`POST /api/v4/runners`).
#[derive(Debug, Clone, Default)]
pub struct LegacyRunnerOptions {
    pub description: String,
    pub tag_list: Vec<String>,
    pub run_untagged: bool,
}

#[derive(Debug, Deserialize)]
struct RunnerDetails {
    #[serde(default)]
    id: u64,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_expires_at: Option<String>,
}

/// Tokens of runners created in GitLab's UI or API (GitLab 15.10+). Other tokens came from
/// the legacy registration.
pub fn is_runner_authentication_token(token: &str) -> bool {
    token.starts_with("glrt-")
}

/// Check and normalise GitLab's base URL (`https://gitlab.example.com[/prefix]`).
pub fn parse_gitlab_url(input: &str) -> Result<url::Url, RunnerApiError> {
    let bad = |reason: &str| RunnerApiError::BadUrl {
        url: input.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(bad(
            "it is empty; pass GitLab's address, e.g. --url https://gitlab.example.com",
        ));
    }
    if !trimmed.contains("://") {
        return Err(bad(&format!(
            "it has no scheme; use https://{trimmed} (or http:// for a GitLab without TLS)"
        )));
    }
    let url = url::Url::parse(trimmed)
        .map_err(|e| bad(&format!("{e}; use e.g. https://gitlab.example.com")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(&format!(
            "the scheme '{}' is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host name"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RunnerApiError::BadUrl {
            url: "(not shown: it holds credentials)".to_string(),
            reason:
                "remove the user name and password: GitLab authenticates the runner by its token"
                    .to_string(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "remove the ?query or #fragment: pass GitLab's base address",
        ));
    }
    let path = url.path().trim_end_matches('/');
    if path.ends_with("/api/v4") || path.contains("/-/") {
        return Err(bad(
            "pass GitLab's base address (e.g. https://gitlab.example.com), without /api/v4 or a project path",
        ));
    }
    Ok(url)
}

/// `{base}/api/v4/{endpoint}` (keeps a relative URL root such as `/gitlab`).
fn api_url(base: &url::Url, endpoint: &str) -> String {
    format!("{}/api/v4/{endpoint}", base.as_str().trim_end_matches('/'))
}

/// An HTTP client for `url` that trusts what gitlab-runner trusts: the system's CA store
/// (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), the bundled Mozilla roots when the
/// system has none, and the PEM certificates of the runner's `tls-ca-file` when given. (Plain
/// `http://` skips reading the store.)
pub fn agent(
    url: &str,
    timeout: Duration,
    extra_ca_pem: Option<&str>,
) -> Result<ureq::Agent, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(15)))
        .timeout(timeout);
    if !url.starts_with("https://") {
        return Ok(builder.build());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(pem) = extra_ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("it is not PEM ({e})"))?;
        if certs.is_empty() {
            return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err("none of its certificates can be used as a CA".into());
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(builder.tls_config(std::sync::Arc::new(tls)).build())
}

/// The TLS error inside `err` (or anything it wraps), if there is one.
fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS handshake failed: {tls}"));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(format!("TLS handshake failed: {tls}"));
            }
        }
        cur = e.source();
    }
    None
}

fn transport_error(url: &str, t: &ureq::Transport) -> RunnerApiError {
    let message = t
        .message()
        .map(str::to_string)
        .or_else(|| std::error::Error::source(t).map(|s| s.to_string()))
        .unwrap_or_else(|| t.kind().to_string());
    if let Some(tls) = tls_error(t) {
        return RunnerApiError::Tls {
            url: url.to_string(),
            message: tls,
        };
    }
    match t.kind() {
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => RunnerApiError::BadUrl {
            url: url.to_string(),
            reason: message,
        },
        ureq::ErrorKind::Dns => RunnerApiError::Unreachable {
            url: url.to_string(),
            message: format!("the host name does not resolve ({message})"),
        },
        ureq::ErrorKind::ConnectionFailed => {
            let refused = std::error::Error::source(t)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            RunnerApiError::Unreachable {
                url: url.to_string(),
                message: if refused {
                    "connection refused".to_string()
                } else {
                    message
                },
            }
        }
        _ => RunnerApiError::Unreachable {
            url: url.to_string(),
            message,
        },
    }
}

/// GitLab's `{"message": …}` (or `{"error": …}`) from an error answer, shortened.
fn error_detail(resp: ureq::Response) -> Option<String> {
    let text = resp.into_string().ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let m = v.get("message").or_else(|| v.get("error"))?;
    let s = match m {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s: String = s.chars().take(200).collect();
    (!s.is_empty()).then_some(s)
}

fn status_hint(status: u16, what: Endpoint) -> String {
    match (status, what) {
        (401 | 403, Endpoint::Verify) => "the runner authentication token is wrong, or the runner was deleted or its token revoked or expired; create a runner in GitLab (Settings > CI/CD > Runners) and use the glrt- token it shows".to_string(),
        (401 | 403, Endpoint::Register) => "forbidden: check the registration token (Settings > CI/CD > Runners); registration tokens may also be disabled on this GitLab".to_string(),
        (401 | 403, Endpoint::Unregister) => "GitLab no longer accepts this runner's token: the runner was probably deleted in GitLab already".to_string(),
        (404, Endpoint::Verify) => "no runner API there: check that --url is GitLab's base address; GitLab before 15.10 needs --registration-token".to_string(),
        (404, _) => "no runner API there: check that --url is GitLab's base address".to_string(),
        (410, Endpoint::Register) => "registration tokens are disabled on this GitLab: create the runner in GitLab's UI and use --token glrt-…".to_string(),
        (422, _) => "GitLab rejected the request's values".to_string(),
        (429, _) => "GitLab is rate-limiting requests; wait a minute and try again".to_string(),
        (500..=599, _) => "GitLab had a server error; try again later, or check GitLab's logs".to_string(),
        _ => "unexpected answer; check GitLab's logs".to_string(),
    }
}

/// How to talk to GitLab's runner API: the timeout, and the PEM of a private CA (the
/// runner's `tls-ca-file`) when GitLab's certificate comes from one.
#[derive(Debug, Clone)]
pub struct Http {
    pub timeout: Duration,
    pub ca_pem: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Verify,
    Register,
    Unregister,
}

/// Sends `body` and maps every failure to a [`RunnerApiError`].
fn send(
    method: &'static str,
    url: &str,
    extra_header: Option<(&str, &str)>,
    body: &serde_json::Value,
    what: Endpoint,
    http: &Http,
) -> Result<ureq::Response, RunnerApiError> {
    let agent = agent(url, http.timeout, http.ca_pem.as_deref())
        .map_err(|message| RunnerApiError::BadCaFile { message })?;
    let mut req = agent
        .request(method, url)
        .set("Accept", "application/json")
        .set("User-Agent", concat!("pogo/", env!("CARGO_PKG_VERSION")));
    if let Some((k, v)) = extra_header {
        req = req.set(k, v);
    }
    match req.send_json(body) {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(status, resp)) => Err(RunnerApiError::Status {
            status,
            method,
            url: url.to_string(),
            detail: error_detail(resp),
            hint: status_hint(status, what),
        }),
        Err(ureq::Error::Transport(t)) => Err(transport_error(url, &t)),
    }
}

fn runner_info() -> serde_json::Value {
    serde_json::json!({
        "name": "pogo",
        "version": env!("CARGO_PKG_VERSION"),
        "executor": "custom",
        "shell": "bash",
        "platform": std::env::consts::OS,
        "architecture": go_arch(),
    })
}

/// The architecture name gitlab-runner reports (Go's `GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn read_details(
    resp: ureq::Response,
    method: &'static str,
    url: &str,
) -> Result<RunnerDetails, RunnerApiError> {
    let text = resp.into_string().map_err(|e| RunnerApiError::Body {
        method,
        url: url.to_string(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| RunnerApiError::Body {
        method,
        url: url.to_string(),
        message: e.to_string(),
    })
}

/// `POST /api/v4/runners/verify` with header `RUNNER-TOKEN`: checks a runner token. A
/// `glrt-` token must come back with a non-zero `id` (gitlab-runner's `verifyRunner`).
pub fn verify_runner(
    base: &url::Url,
    token: &Secret,
    system_id: &str,
    http: &Http,
) -> Result<RunnerCredentials, RunnerApiError> {
    let url = api_url(base, "runners/verify");
    let body = serde_json::json!({
        "token": token.expose(),
        "system_id": system_id,
        "info": runner_info(),
    });
    let resp = send(
        "POST",
        &url,
        Some(("RUNNER-TOKEN", token.expose())),
        &body,
        Endpoint::Verify,
        http,
    )?;
    if !is_runner_authentication_token(token.expose()) {
        // Older tokens: GitLab may answer 200 with a plain body; any 2xx verifies them.
        let id = resp
            .into_string()
            .ok()
            .and_then(|t| serde_json::from_str::<RunnerDetails>(&t).ok())
            .map_or(0, |d| d.id);
        return Ok(RunnerCredentials {
            id,
            token: token.clone(),
            token_expires_at: None,
        });
    }
    let details = read_details(resp, "POST", &url)?;
    if details.id == 0 {
        return Err(RunnerApiError::NotVerified { url });
    }
    Ok(RunnerCredentials {
        id: details.id,
        token: token.clone(),
        token_expires_at: details.token_expires_at.filter(|s| !s.is_empty()),
    })
}

/// Legacy registration, `POST /api/v4/runners` with a registration token: GitLab creates the
/// runner and answers `201 {"id","token","token_expires_at"}`.
pub fn register_runner(
    base: &url::Url,
    registration_token: &Secret,
    options: &LegacyRunnerOptions,
    http: &Http,
) -> Result<RunnerCredentials, RunnerApiError> {
    let url = api_url(base, "runners");
    let body = serde_json::json!({
        "token": registration_token.expose(),
        "description": options.description,
        "tag_list": options.tag_list.join(","),
        "run_untagged": options.run_untagged,
        "locked": true,
        "info": runner_info(),
    });
    let resp = send("POST", &url, None, &body, Endpoint::Register, http)?;
    let details = read_details(resp, "POST", &url)?;
    match details.token.filter(|t| !t.is_empty()) {
        Some(token) if details.id != 0 => Ok(RunnerCredentials {
            id: details.id,
            token: Secret::new(token),
            token_expires_at: details.token_expires_at.filter(|s| !s.is_empty()),
        }),
        _ => Err(RunnerApiError::Body {
            method: "POST",
            url,
            message: "no runner id and token in it".to_string(),
        }),
    }
}

/// Tells GitLab a runner goes away: `DELETE /api/v4/runners/managers` (this machine's runner
/// manager, for `glrt-` tokens; the runner itself stays in GitLab) or `DELETE /api/v4/runners`
/// (legacy tokens: the runner is deleted).
pub fn unregister_runner(
    base: &url::Url,
    token: &Secret,
    system_id: Option<&str>,
    http: &Http,
) -> Result<(), RunnerApiError> {
    let (url, body) = if is_runner_authentication_token(token.expose()) {
        (
            api_url(base, "runners/managers"),
            serde_json::json!({"token": token.expose(), "system_id": system_id.unwrap_or("")}),
        )
    } else {
        (
            api_url(base, "runners"),
            serde_json::json!({"token": token.expose()}),
        )
    };
    send("DELETE", &url, None, &body, Endpoint::Unregister, http).map(|_| ())
}
