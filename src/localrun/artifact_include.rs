//! `trigger: include: - artifact: PATH, job: NAME`: a dynamic child pipeline's file, read on
//! the host from the artifacts (archive and its further parts) the job made in this run.

use std::io::Read;
use std::path::Path;

use crate::driver::local::artifacts_parts;

/// The largest file a dynamic child pipeline may come from: GitLab's limit for a CI/CD
/// configuration file (`max_yaml_size_bytes`, 2 MB by default).
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// `path` without `./` and `/` in front: how an artifact path and a name in the archive
/// compare (the job's tar stores what its `artifacts: paths` matched).
fn normalized(path: &str) -> &str {
    let mut p = path;
    loop {
        let next = p.trim_start_matches('/');
        let next = next.strip_prefix("./").unwrap_or(next);
        if next == p {
            return p.trim_end_matches('/');
        }
        p = next;
    }
}

/// The text of `path` in the artifacts kept in `dir` (the job's own directory of
/// artifacts), or why there is none, in GitLab's words where it has them. The archives are
/// the job's, so what they hold is read, never extracted: only the one file's bytes, at most
/// [`MAX_FILE_BYTES`].
pub fn read(dir: &Path, job: &str, path: &str) -> Result<String, String> {
    let parts = artifacts_parts(dir);
    if parts.is_empty() {
        return Err(format!(
            "Job `{job}` not found in parent pipeline or does not have artifacts!"
        ));
    }
    let wanted = normalized(path);
    for part in &parts {
        let file = std::fs::File::open(part)
            .map_err(|e| format!("cannot read {}: {e}", part.display()))?;
        let unreadable = |e: std::io::Error| {
            format!(
                "the artifacts of job `{job}` cannot be read ({}: {e})",
                part.display()
            )
        };
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let name = entry.path().map_err(unreadable)?;
            if normalized(&name.to_string_lossy()) != wanted {
                continue;
            }
            if !entry.header().entry_type().is_file() {
                return Err(format!(
                    "artifact `{path}` of job `{job}` is not a regular file"
                ));
            }
            if entry.header().size().map_err(unreadable)? > MAX_FILE_BYTES {
                return Err(format!(
                    "artifact `{path}` of job `{job}` is larger than {} MiB, GitLab's limit \
                     for a CI/CD configuration file",
                    MAX_FILE_BYTES / 1024 / 1024
                ));
            }
            let mut bytes = Vec::new();
            entry
                .take(MAX_FILE_BYTES)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
            return String::from_utf8(bytes)
                .map_err(|_| format!("artifact `{path}` of job `{job}` is not UTF-8 text"));
        }
    }
    Err(format!(
        "artifact `{path}` is not in the artifacts of job `{job}` (its artifacts: paths must \
         match it)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.tgz` at `to` holding `files` (name, content), as a job's tar writes it.
    fn tgz(to: &Path, files: &[(&str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(to).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *content).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn the_file_is_found_in_any_part_of_the_jobs_artifacts_however_its_path_is_written() {
        let d = tempfile::tempdir().unwrap();
        tgz(&d.path().join("artifacts.tgz"), &[("a.txt", b"a")]);
        tgz(
            &d.path().join("artifacts.1.tgz"),
            &[("./gen/child.yml", b"job: {script: [x]}\n")],
        );
        for asked in ["gen/child.yml", "./gen/child.yml", "/gen/child.yml"] {
            assert_eq!(
                read(d.path(), "gen", asked).unwrap(),
                "job: {script: [x]}\n"
            );
        }
        // a part after a missing one is not the job's (an earlier, bigger run's leftover)
        tgz(&d.path().join("artifacts.3.tgz"), &[("late.yml", b"x")]);
        assert!(read(d.path(), "gen", "late.yml")
            .unwrap_err()
            .contains("not in the artifacts of job `gen`"));
    }

    #[test]
    fn a_job_without_artifacts_or_a_missing_or_oversized_file_says_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            read(d.path(), "gen", "child.yml").unwrap_err(),
            "Job `gen` not found in parent pipeline or does not have artifacts!"
        );
        let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
        tgz(
            &d.path().join("artifacts.tgz"),
            &[("big.yml", &big), ("bin.yml", &[0xff, 0xfe])],
        );
        assert!(read(d.path(), "gen", "child.yml")
            .unwrap_err()
            .contains("`child.yml` is not in the artifacts of job `gen`"));
        assert!(read(d.path(), "gen", "big.yml")
            .unwrap_err()
            .contains("larger than 2 MiB"));
        assert!(read(d.path(), "gen", "bin.yml")
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn an_archive_that_is_not_one_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("artifacts.tgz"), b"not gzip").unwrap();
        let e = read(d.path(), "gen", "child.yml").unwrap_err();
        assert!(
            e.contains("the artifacts of job `gen` cannot be read"),
            "{e}"
        );
        assert!(e.contains("artifacts.tgz"), "{e}");
    }
}
