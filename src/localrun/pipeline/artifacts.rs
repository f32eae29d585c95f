//! `artifacts:` of a job or of `default:`: paths, exclusions, the dotenv report and `when`.

use serde_json::Value;

use super::parser::Parser;
use super::values::{get, kind, one_or_list, string_list, upload_when};
use crate::driver::Artifacts;

impl Parser {
    /// `artifacts:`; `None` when it has no paths.
    pub(super) fn artifacts(&mut self, v: &Value) -> Result<Option<Artifacts>, String> {
        let Value::Object(m) = v else {
            return Err(format!(
                "must be a mapping with `paths:`, found {}",
                kind(v)
            ));
        };
        for key in m.keys() {
            if !matches!(key.as_str(), "paths" | "when" | "exclude" | "reports") {
                self.ignore(format!("artifacts:{key}"));
            }
        }
        let paths = match get(m, "paths") {
            Some(p) => string_list(p).map_err(|e| format!("paths: {e}"))?,
            None => Vec::new(),
        };
        let exclude = match get(m, "exclude") {
            Some(p) => one_or_list(p).map_err(|e| format!("exclude: {e}"))?,
            None => Vec::new(),
        };
        let mut dotenv = Vec::new();
        match get(m, "reports") {
            None | Some(Value::Null) => {}
            Some(Value::Object(reports)) => {
                for (kind, v) in reports {
                    if kind == "dotenv" {
                        dotenv = one_or_list(v).map_err(|e| format!("reports:dotenv: {e}"))?;
                    } else {
                        // test and coverage reports change nothing a later job sees
                        self.ignore(format!("artifacts:reports:{kind}"));
                    }
                }
            }
            Some(other) => {
                return Err(format!("reports: must be a mapping, found {}", kind(other)))
            }
        }
        let when = upload_when(get(m, "when")).map_err(|e| format!("when: {e}"))?;
        Ok(
            (!paths.is_empty() || !dotenv.is_empty()).then_some(Artifacts {
                paths,
                exclude,
                when,
                dotenv,
            }),
        )
    }
}
