//! How a phase fails ([`Failure`]), and [`OrFailure`]: a failed call's error made into one,
//! its message saying what pogo was doing, the error, and what to do.

use std::fmt::{self, Display};

/// How a phase failed, as gitlab-runner must report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The job's own fault (its script, its image choice): reported as a script failure with
    /// this exit code, never retried.
    Build {
        exit_code: i32,
        message: Option<String>,
    },
    /// Infrastructure (podman, registry, pogo's config): reported as a system failure,
    /// prepare is retried.
    System(String),
}

impl Failure {
    pub fn system(m: impl Display) -> Self {
        Self::System(m.to_string())
    }
    pub fn build(exit_code: i32, m: impl Display) -> Self {
        Self::Build {
            exit_code,
            message: Some(m.to_string()),
        }
    }
}

/// The message the job log shows; a script's own failure, which has none, by its exit code.
impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System(m)
            | Self::Build {
                message: Some(m), ..
            } => f.write_str(m),
            Self::Build {
                exit_code,
                message: None,
            } => write!(f, "exit code {exit_code}"),
        }
    }
}

impl std::error::Error for Failure {}

/// A failed call's error `e` made into a [`Failure`] that says what pogo was doing:
/// `"{what}: {e}"`, and `"{what}: {e}; {fix}"` where there is something to do about it.
pub trait OrFailure<T> {
    /// Infrastructure failed: a system failure `"{what}: {e}"`.
    fn or_system<W: Display>(self, what: impl FnOnce() -> W) -> Result<T, Failure>;
    /// Infrastructure failed and `fix` says what to do: a system failure
    /// `"{what}: {e}; {fix}"`.
    fn or_system_fix<W: Display>(self, what: impl FnOnce() -> W, fix: &str) -> Result<T, Failure>;
    /// The job's own fault: a build failure with `exit_code`, `"{what}: {e}"`.
    fn or_build<W: Display>(self, exit_code: i32, what: impl FnOnce() -> W) -> Result<T, Failure>;
}

impl<T, E: Display> OrFailure<T> for Result<T, E> {
    fn or_system<W: Display>(self, what: impl FnOnce() -> W) -> Result<T, Failure> {
        self.map_err(|e| Failure::system(format!("{}: {e}", what())))
    }
    fn or_system_fix<W: Display>(self, what: impl FnOnce() -> W, fix: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::system(format!("{}: {e}; {fix}", what())))
    }
    fn or_build<W: Display>(self, exit_code: i32, what: impl FnOnce() -> W) -> Result<T, Failure> {
        self.map_err(|e| Failure::build(exit_code, format!("{}: {e}", what())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_log_shows_a_failures_message_or_else_the_scripts_exit_code() {
        assert_eq!(
            Failure::system("podman is gone").to_string(),
            "podman is gone"
        );
        assert_eq!(
            Failure::build(2, "image refused").to_string(),
            "image refused"
        );
        let script = Failure::Build {
            exit_code: 3,
            message: None,
        };
        assert_eq!(script.to_string(), "exit code 3");
        let as_error: Box<dyn std::error::Error> = Box::new(script);
        assert_eq!(as_error.to_string(), "exit code 3");
    }

    #[test]
    fn a_failed_call_says_what_pogo_was_doing_the_error_and_what_to_do() {
        let failed: Result<(), &str> = Err("Permission denied (os error 13)");
        assert_eq!(
            failed.or_system(|| "cannot write /w/job"),
            Err(Failure::System(
                "cannot write /w/job: Permission denied (os error 13)".into()
            ))
        );
        assert_eq!(
            failed.or_system_fix(
                || format!("cannot create the cache directory {}", "/c"),
                "check cache_dir in the pogo config"
            ),
            Err(Failure::System(
                "cannot create the cache directory /c: Permission denied (os error 13); \
                 check cache_dir in the pogo config"
                    .into()
            ))
        );
        assert_eq!(
            Err::<(), _>("no tag").or_build(1, || "job image refused"),
            Err(Failure::build(1, "job image refused: no tag"))
        );
    }

    #[test]
    fn a_call_that_worked_is_passed_on_and_its_message_never_made() {
        let ok: Result<u8, &str> = Ok(7);
        let never = || -> String { panic!("the message of a call that worked was made") };
        assert_eq!(ok.or_system(never), Ok(7));
        assert_eq!(ok.or_system_fix(never, "fix"), Ok(7));
        assert_eq!(ok.or_build(1, never), Ok(7));
    }

    #[test]
    fn a_failure_wrapped_keeps_its_message_and_becomes_a_system_failure() {
        let pull: Result<(), Failure> = Err(Failure::build(1, "image x is not in storage"));
        assert_eq!(
            pull.or_system(|| "helper_image"),
            Err(Failure::system("helper_image: image x is not in storage"))
        );
    }
}
