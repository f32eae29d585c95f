//! `pogo tui`: the dashboard. Model / update / view (the Elm architecture): `update` is pure
//! and tested with key sequences, views are pure functions of the model with snapshot tests,
//! and `app` runs one `tokio::select!` loop over the terminal, podman's event stream, the
//! file watcher and timers, drawing only when something changed.

pub mod app;
pub mod cgroup;
pub mod configform;
pub mod effects;
pub mod keys;
pub mod logview;
pub mod model;
pub mod procs;
pub mod runners;
pub mod sources;
pub mod textinput;
pub mod update;
pub mod views;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;

pub use crate::cli::TuiArgs;

/// Run the dashboard until the user quits; the exit code.
pub fn main(config_flag: Option<&Path>, args: &TuiArgs, env: HashMap<String, String>) -> i32 {
    if !std::io::stdout().is_terminal() {
        eprintln!("pogo tui: standard output is not a terminal; run it in a terminal (or tmux)");
        return 2;
    }
    match app::run(config_flag, args, env) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pogo tui: {e}");
            1
        }
    }
}
