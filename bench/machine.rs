//! Facts about the machine for the benchmark's and the soak's reports (both `#[path]`-include
//! this file): what `podman info` says, the CPUs and the kernel.

use serde_json::Value;
use std::process::{Command, Stdio};

/// `podman info --format json`, or nothing when podman does not answer.
pub struct PodmanInfo(Value);

impl PodmanInfo {
    pub fn load() -> Self {
        let info = Command::new("podman")
            .args(["info", "--format", "json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or(Value::Null);
        Self(info)
    }

    /// The value at JSON `pointer` as text, `?` when it is missing.
    pub fn get(&self, pointer: &str) -> String {
        self.0
            .pointer(pointer)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "?".into())
    }

    /// `rootless`, `rootful` or `?`.
    pub fn mode(&self) -> &'static str {
        match self.0.pointer("/host/security/rootless") {
            Some(Value::Bool(true)) => "rootless",
            Some(Value::Bool(false)) => "rootful",
            _ => "?",
        }
    }
}

/// The number of CPUs this process may use.
pub fn nproc() -> String {
    std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The kernel release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
