//! The labels pogo puts on everything it creates: `pogo gc`, cleanup and the dashboard find
//! pogo's containers, pods, volumes and secrets by them, never by a name a job can forge.

/// Marks a persistent builds volume; its value is the days it is kept unused.
pub const LABEL_BUILDS_VOLUME: &str = "io.pogo.builds-volume";

pub const LABEL_MANAGED_BY: &str = "io.pogo.managed-by";
pub const LABEL_RUNNER: &str = "io.pogo.runner";
pub const LABEL_CREATED: &str = "io.pogo.created";
/// The job's timeout in seconds: `pogo gc` leaves younger jobs alone.
pub const LABEL_TIMEOUT: &str = "io.pogo.timeout";
pub const LABEL_JOB_KEY: &str = "io.pogo.job-key";

/// Label values come partly from the job (its name, project path): no control characters,
/// bounded length.
pub fn sanitize_label_value(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_lose_control_characters() {
        assert_eq!(sanitize_label_value("a\nb\0c"), "abc");
        assert_eq!(sanitize_label_value(&"x".repeat(1000)).len(), 256);
    }
}
