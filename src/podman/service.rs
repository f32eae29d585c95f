//! A job's service as GitLab describes it: what `podman::args` builds a service container from.

use serde::Deserialize;

/// One entry of `CUSTOM_ENV_CI_JOB_SERVICES`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub variables: Option<std::collections::BTreeMap<String, String>>,
}
