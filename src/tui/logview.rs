//! The detail pane's log: the job's log copy read incrementally (only what was appended since
//! the last read), cleaned of terminal escapes and GitLab's section markers, bounded in memory,
//! with follow, scrolling and search. Pure apart from [`read_new`].

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Lines kept in memory; older ones are dropped (the file has them all).
pub const MAX_LINES: usize = 10_000;
/// On opening a big log, read only its end.
pub const MAX_INITIAL_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    /// The job key whose log this is.
    pub key: Option<String>,
    pub lines: Vec<String>,
    /// A line still being written (no newline yet).
    pub partial: String,
    /// Bytes of the file consumed so far.
    pub offset: u64,
    /// Bytes of an incomplete UTF-8 sequence carried to the next read.
    carry: Vec<u8>,
    /// Stick to the end as lines arrive.
    pub follow: bool,
    /// First line shown when not following.
    pub top: usize,
    pub search: Option<String>,
    /// Line of the current search hit.
    pub hit: Option<usize>,
    /// Lines dropped from the front (for "… N earlier lines").
    pub dropped: usize,
}

impl Default for LogView {
    fn default() -> Self {
        Self {
            key: None,
            lines: Vec::new(),
            partial: String::new(),
            offset: 0,
            carry: Vec::new(),
            follow: true,
            top: 0,
            search: None,
            hit: None,
            dropped: 0,
        }
    }
}

/// Remove terminal escape sequences and GitLab's `section_start:…`/`section_end:…` markers;
/// a carriage return keeps what follows it (progress bars), as a terminal shows it.
pub fn clean_line(raw: &str) -> String {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters and intermediates until a final byte @..~
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => out.clear(),
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    // GitLab trace sections: "section_start:1700000000:name[collapsed=true]" then text.
    for marker in ["section_start:", "section_end:"] {
        while let Some(i) = out.find(marker) {
            let rest = &out[i + marker.len()..];
            let mut end = rest.len();
            if let Some((_ts, tail)) = rest.split_once(':') {
                let name_len = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.[]=,".contains(c)))
                    .unwrap_or(tail.len());
                end = rest.len() - tail.len() + name_len;
            }
            out.replace_range(i..i + marker.len() + end, "");
        }
    }
    out
}

impl LogView {
    /// Start over for another job.
    pub fn reset(&mut self, key: Option<String>) {
        *self = Self {
            key,
            ..Self::default()
        };
    }

    /// Append bytes read from the file at `self.offset`.
    pub fn append(&mut self, data: &[u8]) {
        self.offset += data.len() as u64;
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(data);
        let valid_up_to = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.carry = bytes.split_off(valid_up_to);
        let text = String::from_utf8_lossy(&bytes);
        let mut pieces = text.split('\n').peekable();
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_none() {
                self.partial.push_str(piece);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.push_str(piece);
                self.lines.push(clean_line(&line));
            }
        }
        if self.lines.len() > MAX_LINES {
            let drop = self.lines.len() - MAX_LINES;
            self.lines.drain(..drop);
            self.dropped += drop;
            self.top = self.top.saturating_sub(drop);
            self.hit = self.hit.and_then(|h| h.checked_sub(drop));
        }
    }

    /// Every line including the one being written.
    pub fn all_lines(&self) -> impl Iterator<Item = String> + '_ {
        let partial = (!self.partial.is_empty()).then(|| clean_line(&self.partial));
        self.lines.iter().cloned().chain(partial)
    }

    pub fn len(&self) -> usize {
        self.lines.len() + usize::from(!self.partial.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first line to show in a pane `height` lines high.
    pub fn first_visible(&self, height: usize) -> usize {
        let max_top = self.len().saturating_sub(height);
        if self.follow {
            max_top
        } else {
            self.top.min(max_top)
        }
    }

    /// Scroll by `delta` lines (negative: up); scrolling stops following.
    pub fn scroll(&mut self, delta: isize, height: usize) {
        let cur = self.first_visible(height);
        let max_top = self.len().saturating_sub(height);
        let new = cur.saturating_add_signed(delta).min(max_top);
        self.follow = false;
        self.top = new;
    }

    /// Jump to the next (or previous) line containing the search text, wrapping around.
    pub fn find(&mut self, forward: bool, height: usize) -> bool {
        let Some(needle) = self.search.clone().filter(|s| !s.is_empty()) else {
            return false;
        };
        let needle = needle.to_lowercase();
        let lines: Vec<String> = self.all_lines().collect();
        let n = lines.len();
        if n == 0 {
            return false;
        }
        let start = match (self.hit, forward) {
            (Some(h), true) => h + 1,
            (Some(h), false) => h + n - 1,
            (None, true) => 0,
            (None, false) => n - 1,
        };
        for k in 0..n {
            let i = if forward {
                (start + k) % n
            } else {
                (start + n - k) % n
            };
            if lines[i].to_lowercase().contains(&needle) {
                self.hit = Some(i);
                self.follow = false;
                self.top = i.saturating_sub(height / 2);
                return true;
            }
        }
        self.hit = None;
        false
    }
}

/// Read what was appended to `path` since `offset`. A file that shrank (a retried job started a
/// new log) is read again from the start: `reset` is then true. A big file on first read
/// yields only its last [`MAX_INITIAL_BYTES`].
pub fn read_new(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let (start, reset) = if len < offset {
        (len.saturating_sub(MAX_INITIAL_BYTES), true)
    } else if offset == 0 {
        (len.saturating_sub(MAX_INITIAL_BYTES), false)
    } else {
        (offset, false)
    };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    if start > 0 && (offset == 0 || reset) {
        // Started in the middle of a line: drop it.
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    Ok((buf, len, reset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_gitlab_section_markers_are_removed() {
        let raw = "\x1b[0Ksection_start:1700000000:step_script\r\x1b[0K\x1b[32;1mExecuting \"step_script\"\x1b[0;m";
        assert_eq!(clean_line(raw), "Executing \"step_script\"");
        assert_eq!(
            clean_line("\x1b[0Ksection_end:1700000001:step_script\r\x1b[0K"),
            ""
        );
        assert_eq!(clean_line("50%\r100% done"), "100% done");
        assert_eq!(clean_line("line\r"), "line");
    }

    #[test]
    fn lines_arriving_in_pieces_are_joined() {
        let mut v = LogView::default();
        v.append(b"hel");
        assert_eq!(v.all_lines().collect::<Vec<_>>(), vec!["hel"]);
        v.append(b"lo\nwor");
        v.append(b"ld\n");
        assert_eq!(v.lines, vec!["hello", "world"]);
        assert_eq!(v.offset, 12);
    }

    #[test]
    fn a_utf8_character_split_across_reads_is_kept_whole() {
        let mut v = LogView::default();
        let s = "été\n".as_bytes();
        v.append(&s[..1]);
        v.append(&s[1..]);
        assert_eq!(v.lines, vec!["été"]);
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_oldest_lines() {
        let mut v = LogView::default();
        let text: String = (0..MAX_LINES + 5).map(|i| format!("{i}\n")).collect();
        v.append(text.as_bytes());
        assert_eq!(v.lines.len(), MAX_LINES);
        assert_eq!(v.dropped, 5);
        assert_eq!(v.lines[0], "5");
    }

    #[test]
    fn following_shows_the_end_and_scrolling_up_stops_following() {
        let mut v = LogView::default();
        v.append(b"1\n2\n3\n4\n5\n");
        assert_eq!(v.first_visible(2), 3);
        v.scroll(-2, 2);
        assert!(!v.follow);
        assert_eq!(v.first_visible(2), 1);
        v.append(b"6\n");
        assert_eq!(v.first_visible(2), 1, "a scrolled view stays where it is");
    }

    #[test]
    fn search_jumps_forward_and_back_and_wraps() {
        let mut v = LogView::default();
        v.append(b"a ERROR\nb\nc error\nd\n");
        v.search = Some("error".into());
        assert!(v.find(true, 2));
        assert_eq!(v.hit, Some(0));
        assert!(v.find(true, 2));
        assert_eq!(v.hit, Some(2));
        assert!(v.find(true, 2));
        assert_eq!(v.hit, Some(0), "wraps around");
        assert!(v.find(false, 2));
        assert_eq!(v.hit, Some(2));
        v.search = Some("absent".into());
        assert!(!v.find(true, 2));
    }

    #[test]
    fn reading_picks_up_only_what_was_appended() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        std::fs::write(&p, "one\n").unwrap();
        let (b, off, reset) = read_new(&p, 0).unwrap();
        assert_eq!((b.as_slice(), off, reset), (&b"one\n"[..], 4, false));
        std::fs::write(&p, "one\ntwo\n").unwrap();
        let (b, off, _) = read_new(&p, off).unwrap();
        assert_eq!((b.as_slice(), off), (&b"two\n"[..], 8));
        std::fs::write(&p, "x\n").unwrap();
        let (b, _, reset) = read_new(&p, off).unwrap();
        assert!(reset);
        assert_eq!(b, b"x\n");
    }
}
