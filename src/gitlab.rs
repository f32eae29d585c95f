//! The one GitLab API call the executor makes: the job's tags (`GET /job` with the job token).

use crate::executor::env::Secret;
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
    #[error("cannot reach GitLab at {url} to read the job's tags: {message}")]
    Transport { url: String, message: String },
    #[error("GitLab's answer to GET {url} is not the expected JSON: {message}")]
    Body { url: String, message: String },
    #[error("CUSTOM_ENV_CI_API_V4_URL is not set, so pogo cannot ask GitLab for the job's tags")]
    NoApiUrl,
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
    timeout: Duration,
) -> Result<Vec<String>, GitlabError> {
    if api_url.is_empty() {
        return Err(GitlabError::NoApiUrl);
    }
    let url = format!("{}/job", api_url.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
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
        Err(ureq::Error::Transport(t)) => Err(GitlabError::Transport {
            url,
            message: t.to_string(),
        }),
    }
}
