//! pogo's integration tests, one test binary (`cargo test --test suite`): each module below is
//! a suite of its own (`cargo test --test suite executor::` runs one), and `common` is the
//! harness they share. tests/README.md says what each suite covers and how `make test` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

mod concurrency;
mod doctor;
mod example;
mod executor;
mod faults;
mod image_build;
mod install;
mod leftovers;
mod parity;
mod register;
mod rootless;
mod secrets;
mod stage_paths;
mod tls;
mod tui_e2e;
