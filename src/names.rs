//! The one character set pogo's names are made of: container, pod and volume names, job keys,
//! artifact directories, project names. Podman's own names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`;
//! everything pogo builds from a job's values keeps to these characters.

/// An ASCII letter or digit, `_`, `.` or `-`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ascii_letters_digits_and_three_marks() {
        assert!("pogo-r_1.0".chars().all(is_name_char));
        for c in ['/', ':', ' ', 'é', '\n', '$', '@'] {
            assert!(!is_name_char(c), "{c:?}");
        }
    }
}
