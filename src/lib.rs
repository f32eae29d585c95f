//! pogo: a GitLab Runner custom executor on rootless Podman.
//!
//! The pure core (`config`, `podman::args`, `executor::env`) does no IO; the thin IO layers
//! (`podman`, `gitlab`, the executor phases) call Podman through `tokio::process`.

pub mod app;
pub mod cli;
pub mod config;
pub mod driver;
pub mod executor;
pub mod fsutil;
pub mod gitlab;
pub mod localrun;
pub mod logging;
pub mod names;
pub mod podman;
pub mod secret;
pub mod setup;
pub mod state;
pub mod tui;

#[cfg(test)]
mod architecture_tests;
