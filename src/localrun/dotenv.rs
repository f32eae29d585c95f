//! `artifacts:reports:dotenv`: the `KEY=VALUE` file a job leaves for the jobs that depend on
//! it, read as GitLab reads it when the report is uploaded (`Ci::ParseDotenvArtifactService`):
//! one variable per line, key and value trimmed, no quotes removed, no empty lines or
//! comments, at most 20 variables in 5 KiB. A report GitLab would refuse fails its job.

/// GitLab's default `dotenv_variable_limit`.
const MAX_VARIABLES: usize = 20;
/// GitLab's default `dotenv_size_limit`.
const MAX_BYTES: usize = 5 * 1024;

/// The variables of a dotenv report, in order, or GitLab's reason to refuse it.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "Dotenv Artifact Too Big. Maximum Allowable Size: {} KiB",
            MAX_BYTES / 1024
        ));
    }
    let mut vars: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            return Err("Invalid Format".to_string());
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "Validation failed: Key can contain only letters, digits and '_' ({key:?})"
            ));
        }
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_string(), value.to_string()));
    }
    if vars.len() > MAX_VARIABLES {
        return Err(format!(
            "Dotenv files cannot have more than {MAX_VARIABLES} variables"
        ));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_dotenv_report_is_read_line_by_line_without_unquoting() {
        assert_eq!(
            parse("VERSION=1.2\n URL = https://x/?a=b \nQUOTED=\"q\"\n").unwrap(),
            [
                ("VERSION".to_string(), "1.2".to_string()),
                ("URL".to_string(), "https://x/?a=b".to_string()),
                ("QUOTED".to_string(), "\"q\"".to_string()),
            ]
        );
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn a_report_gitlab_refuses_is_refused_with_its_words() {
        assert_eq!(parse("A=1\n\nB=2\n").unwrap_err(), "Invalid Format");
        assert_eq!(parse("# comment\n").unwrap_err(), "Invalid Format");
        assert!(parse("MY-VAR=1\n")
            .unwrap_err()
            .starts_with("Validation failed: Key can contain only letters"));
        let many: String = (0..21).map(|i| format!("V{i}=x\n")).collect();
        assert_eq!(
            parse(&many).unwrap_err(),
            "Dotenv files cannot have more than 20 variables"
        );
        assert!(parse(&"A=".repeat(3000))
            .unwrap_err()
            .starts_with("Dotenv Artifact Too Big"));
    }
}
