//! Diagnostics: `tracing` to stderr only (stdout of `pogo config` is the protocol), filtered
//! by `POGO_LOG` (default `warn`). Job-log messages are written directly, not through tracing.
//!
//! Only pogo's own modules log below `warn`: a bare level (`POGO_LOG=debug`) means pogo's, and
//! directives for other crates are dropped. The HTTP client logs request headers at debug
//! (`RUNNER-TOKEN: glrt-…` in `pogo register`, `JOB-TOKEN: …` in `pogo config`, whose stderr
//! is the job log), and no dependency's `log` records are bridged into tracing at all.

use tracing_subscriber::EnvFilter;

/// A warning line for the job log (stderr of prepare/run is the job log), in GitLab's yellow
/// warning style.
pub fn job_log_warning(message: &str) -> String {
    format!("\x1b[0;33mWARNING: pogo: {message}\x1b[0;m")
}

/// The filter directives for a `POGO_LOG` value (pure): `warn` for everything, then each of
/// the user's directives that concerns pogo (a bare level is pogo's).
pub fn directives(pogo_log: Option<&str>) -> String {
    let mut out = vec!["warn".to_string()];
    for d in pogo_log.unwrap_or("").split(',').map(str::trim) {
        if d.is_empty() {
            continue;
        }
        let (target, level) = match d.split_once('=') {
            Some((t, l)) => (t.trim(), l.trim()),
            None if d.parse::<tracing::Level>().is_ok() || d.eq_ignore_ascii_case("off") => {
                ("pogo", d)
            }
            None => (d, "trace"),
        };
        let ours = target == "pogo" || target.starts_with("pogo::");
        // a level filter only: spans/fields syntax (`[...]`) is not pogo's business
        if ours && !target.contains('[') && level.parse::<tracing::Level>().is_ok() {
            out.push(format!("{target}={level}"));
        } else if ours && level.eq_ignore_ascii_case("off") {
            out.push(format!("{target}=off"));
        }
    }
    out.join(",")
}

pub fn init() {
    let wanted = std::env::var("POGO_LOG").ok();
    let filter = EnvFilter::try_new(directives(wanted.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn debug_logging_is_pogos_own_and_never_the_http_clients() {
        assert_eq!(directives(None), "warn");
        assert_eq!(directives(Some("debug")), "warn,pogo=debug");
        assert_eq!(directives(Some("TRACE")), "warn,pogo=TRACE");
        assert_eq!(
            directives(Some("ureq=trace,rustls=debug,pogo::gitlab=trace")),
            "warn,pogo::gitlab=trace"
        );
        assert_eq!(directives(Some("pogo")), "warn,pogo=trace");
        assert_eq!(directives(Some("garbage=loud, ,")), "warn");
    }
}
