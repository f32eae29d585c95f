//! Streaming redaction of masked CI/CD variables, as GitLab masks them in the job log: every
//! occurrence of a masked value of at least [`MIN_MASKED_LEN`] bytes becomes `[MASKED]`, also
//! when the value arrives split across two (or more) output chunks.
//!
//! Pure: bytes in, bytes out. The only state carried between chunks is the tail that could still
//! be the beginning of a secret (at most the longest secret's length minus one byte).

/// GitLab only masks values of 8 characters or more.
pub const MIN_MASKED_LEN: usize = 8;

/// What a masked value is replaced with.
pub const MASK: &[u8] = b"[MASKED]";

/// Redacts a byte stream chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another one is masked whole.
    secrets: Vec<Vec<u8>>,
    /// `first[b]`: some secret starts with byte `b`.
    first: Vec<bool>,
    /// Bytes held back because they may be the start of a secret.
    pending: Vec<u8>,
}

impl Redactor {
    /// A redactor for `values`; values shorter than [`MIN_MASKED_LEN`] bytes are not masked
    /// (GitLab refuses to mask them too).
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut secrets: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let mut first = vec![false; 256];
        for s in &secrets {
            if let Some(&b) = s.first() {
                first[usize::from(b)] = true;
            }
        }
        Self {
            secrets,
            first,
            pending: Vec::new(),
        }
    }

    /// No value to mask: output equals input.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Redact `chunk`, appending what is safe to write now to `out`. Bytes that may be the
    /// beginning of a secret are held back until the next chunk (or [`Redactor::finish`]).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.secrets.is_empty() {
            out.extend_from_slice(chunk);
            return;
        }
        if self.pending.is_empty() {
            self.scan(chunk, out, false);
        } else {
            let mut b = std::mem::take(&mut self.pending);
            b.extend_from_slice(chunk);
            self.scan(&b, out, false);
        }
    }

    /// End of stream: what was held back is masked where it holds a whole secret (a shorter
    /// one, when a longer one it begins did not come) and written.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.pending);
        self.scan(&held, out, true);
    }

    /// Mask `buf` into `out`. Unless this is the `last` of the stream, stop where the rest may
    /// still become a (longer) secret and keep it pending: masking a shorter secret there
    /// could leak the end of the longer one.
    fn scan(&mut self, buf: &[u8], out: &mut Vec<u8>, last: bool) {
        let mut i = 0;
        let mut copied_from = 0;
        while i < buf.len() {
            if !self.first[usize::from(buf[i])] {
                i += 1;
                continue;
            }
            let rest = &buf[i..];
            if !last
                && self
                    .secrets
                    .iter()
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
            {
                out.extend_from_slice(&buf[copied_from..i]);
                self.pending = rest.to_vec();
                return;
            }
            if let Some(s) = self.secrets.iter().find(|s| rest.starts_with(s)) {
                out.extend_from_slice(&buf[copied_from..i]);
                out.extend_from_slice(MASK);
                i += s.len();
                copied_from = i;
                continue;
            }
            i += 1;
        }
        out.extend_from_slice(&buf[copied_from..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact_chunks(secrets: &[&str], chunks: &[&str]) -> String {
        let mut r = Redactor::new(secrets);
        let mut out = Vec::new();
        for c in chunks {
            r.push(c.as_bytes(), &mut out);
        }
        r.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_masked_value_in_one_chunk_is_replaced() {
        assert_eq!(
            redact_chunks(&["s3cr3t-value"], &["token=s3cr3t-value ok\n"]),
            "token=[MASKED] ok\n"
        );
    }

    #[test]
    fn a_longer_secret_beginning_with_a_shorter_one_is_masked_whole_across_chunks() {
        let secrets = ["abcdefgh", "abcdefgh12345"];
        assert_eq!(
            redact_chunks(&secrets, &["x abcdefgh12", "345 y\n"]),
            "x [MASKED] y\n"
        );
        // the shorter one alone, also when the stream ends right after it
        assert_eq!(
            redact_chunks(&secrets, &["x abcdefgh", "1 y\n"]),
            "x [MASKED]1 y\n"
        );
        assert_eq!(redact_chunks(&secrets, &["x abcdefgh"]), "x [MASKED]");
        assert_eq!(redact_chunks(&secrets, &["x abcdefgh123"]), "x [MASKED]123");
    }

    #[test]
    fn a_masked_value_split_across_chunks_is_replaced() {
        assert_eq!(
            redact_chunks(&["s3cr3t-value"], &["token=s3c", "r3t-va", "lue ok\n"]),
            "token=[MASKED] ok\n"
        );
    }

    #[test]
    fn a_value_split_byte_by_byte_is_still_replaced() {
        let text = "a s3cr3t-value b s3cr3t-value";
        let chunks: Vec<String> = text.chars().map(|c| c.to_string()).collect();
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(
            redact_chunks(&["s3cr3t-value"], &chunks),
            "a [MASKED] b [MASKED]"
        );
    }

    #[test]
    fn values_shorter_than_eight_characters_are_left_alone_like_gitlab_does() {
        assert_eq!(redact_chunks(&["short"], &["a short b"]), "a short b");
    }

    #[test]
    fn a_false_start_is_written_out_unchanged() {
        assert_eq!(
            redact_chunks(&["password1234"], &["passw", "ord is not shown"]),
            "password is not shown"
        );
        assert_eq!(
            redact_chunks(&["password1234"], &["ends with passwor"]),
            "ends with passwor"
        );
    }

    #[test]
    fn the_longest_of_overlapping_values_is_masked_whole() {
        assert_eq!(
            redact_chunks(
                &["abcdefgh", "abcdefgh-longer"],
                &["x abcdefgh-longer y abcdefgh"]
            ),
            "x [MASKED] y [MASKED]"
        );
    }

    #[test]
    fn a_secret_following_a_false_start_is_found() {
        // "aab..." where the secret is "ab..." : the first `a` is a false start.
        assert_eq!(
            redact_chunks(&["abcdefghij"], &["aa", "bcdefghij!"]),
            "a[MASKED]!"
        );
    }

    #[test]
    fn without_secrets_output_is_passed_through() {
        let r = Redactor::new(Vec::<String>::new());
        assert!(r.is_empty());
        assert_eq!(redact_chunks(&[], &["abc", "def"]), "abcdef");
    }

    #[test]
    fn held_back_bytes_never_exceed_the_longest_secret() {
        let mut r = Redactor::new(["0123456789"]);
        let mut out = Vec::new();
        r.push(b"xxxx012345678", &mut out);
        assert_eq!(out, b"xxxx");
        assert!(r.pending.len() < 10);
    }
}
