//! The one character set pogo's names are made of: container, pod and volume names, job keys,
//! artifact directories, project names. Podman's own names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`;
//! everything pogo builds from a job's values keeps to these characters. Also the names
//! GitLab accepts for variables.

/// An ASCII letter or digit, `_`, `.` or `-`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `s` with every character that is not a name character turned into `-`.
pub fn dash_other_chars(s: &str) -> String {
    s.chars()
        .map(|c| if is_name_char(c) { c } else { '-' })
        .collect()
}

/// The first `bytes` bytes of the SHA-256 of `parts` (one after the other), in lower-case hex:
/// the fingerprints in pogo's names, its image notes and `cache: key: files`.
pub fn sha256_hex(parts: &[&[u8]], bytes: usize) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A variable name GitLab accepts: letters, digits and `_`.
pub fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A GitLab project path (`group/sub/project`): segments of letters, digits, `_`, `-` and
/// `.`, none empty, `.`, `..` or starting with `-`.
pub fn valid_project_path(p: &str) -> bool {
    p.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && !seg.starts_with('-')
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_digest_of_the_parts_in_order() {
        // SHA-256("abc") begins ba7816bf
        assert_eq!(sha256_hex(&[b"a", b"bc"], 4), "ba7816bf");
        assert_eq!(sha256_hex(&[b"abc"], 32).len(), 64);
    }

    #[test]
    fn other_characters_become_dashes() {
        assert_eq!(dash_other_chars("test:unit é/1.0_x"), "test-unit---1.0_x");
    }

    #[test]
    fn names_are_ascii_letters_digits_and_three_marks() {
        assert!("pogo-r_1.0".chars().all(is_name_char));
        for c in ['/', ':', ' ', 'é', '\n', '$', '@'] {
            assert!(!is_name_char(c), "{c:?}");
        }
    }
}
