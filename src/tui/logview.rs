//! The detail pane's log: the job's log copy read incrementally (only what was appended since
//! the last read), cleaned of terminal escapes and GitLab's section markers, held whole in
//! memory up to [`MAX_TEXT`] bytes (a log copy within gitlab-runner's default 4 MiB limit always
//! is), with follow, scrolling, search with a match count, a filter that shows only matching
//! lines, wrapping and horizontal scrolling; each line knows where it starts in the file, and so
//! when it was written (from the log copy's `.times` file). Pure apart from [`read_new`].

use ratatui::style::{Color, Modifier, Style};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

/// Bytes of cleaned text kept in memory: twice gitlab-runner's default `output_limit` (and
/// pogo's default `log_copy_limit`), so a default log copy is always there whole. Past it the
/// oldest lines are dropped (the file has them; the title says how many, `s` saves all).
pub const MAX_TEXT: usize = 8 << 20;
/// On opening a log, read at most this much of its end.
pub const MAX_INITIAL_BYTES: u64 = MAX_TEXT as u64;
/// Columns `<`/`>` move the log sideways.
pub const SIDE_STEP: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    /// The job key whose log this is.
    pub key: Option<String>,
    /// The complete lines, cleaned, one after another (no separators): line `i` is
    /// `text[ends[i-1]..ends[i]]`.
    text: String,
    ends: Vec<usize>,
    /// Where the job's own colours change in `text`, rising.
    styles: StylePoints,
    /// The job's colour in effect after the last complete line.
    pen: Style,
    /// Byte offset in the file where each complete line starts.
    pub starts: Vec<u64>,
    /// A line still being written (no newline yet), as read, and cleaned.
    partial: String,
    partial_clean: String,
    partial_styles: StylePoints,
    /// Where `partial` starts in the file.
    partial_start: u64,
    /// The file position after the last byte read.
    pub offset: u64,
    /// From the `.times` file: (offset, Unix milliseconds), offsets rising: the bytes from
    /// `offset` on were written at that time.
    pub times: Vec<(u64, u64)>,
    /// The `.times` file position after the last byte read.
    pub times_offset: u64,
    /// An incomplete line of the `.times` file.
    times_partial: String,
    /// Bytes of an incomplete UTF-8 sequence carried to the next read.
    carry: Vec<u8>,
    /// Stick to the end as lines arrive.
    pub follow: bool,
    /// First row shown when not following (a line; with the filter on, a matching line).
    pub top: usize,
    /// What `/` searches for (case-insensitive); set with [`LogView::set_search`].
    search: Option<String>,
    /// The complete lines that contain `search`, rising.
    matches: Vec<usize>,
    /// Line of the current search hit.
    pub hit: Option<usize>,
    /// Show only the lines that contain the search text.
    pub filter: bool,
    /// Wrap long lines instead of cutting them.
    pub wrap: bool,
    /// Columns scrolled to the right (when not wrapping).
    pub left: usize,
    /// Show the log without the job's colours.
    pub plain: bool,
    /// Lines dropped from the front (for "… N earlier lines").
    pub dropped: usize,
    /// How many of the dropped lines match the search (read from the file), once known.
    pub earlier_matches: Option<usize>,
}

impl Default for LogView {
    fn default() -> Self {
        Self {
            key: None,
            text: String::new(),
            ends: Vec::new(),
            styles: Vec::new(),
            pen: Style::default(),
            starts: Vec::new(),
            partial: String::new(),
            partial_clean: String::new(),
            partial_styles: Vec::new(),
            partial_start: 0,
            offset: 0,
            times: Vec::new(),
            times_offset: 0,
            times_partial: String::new(),
            carry: Vec::new(),
            follow: true,
            top: 0,
            search: None,
            matches: Vec::new(),
            hit: None,
            filter: false,
            wrap: false,
            left: 0,
            plain: false,
            dropped: 0,
            earlier_matches: None,
        }
    }
}

/// One line of a `.times` file: `OFFSET UNIX_MILLIS`.
fn parse_times_line(line: &str) -> Option<(u64, u64)> {
    let mut it = line.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(offset)), Some(Ok(millis))) => Some((offset, millis)),
        _ => None,
    }
}

/// The log copy `raw` as saved with timestamps shown: every line, as written (escapes and
/// section markers kept, like GitLab's raw log), after `YYYY-MM-DD HH:MM:SS ` of when its first
/// byte was written (`utc_offset` seconds east of UTC), from the `.times` file's `times`; blank
/// of the same width where that file does not say.
pub fn with_timestamps(raw: &[u8], times: &str, utc_offset: i32) -> Vec<u8> {
    const WIDTH: usize = "YYYY-MM-DD HH:MM:SS ".len();
    let mut known: Vec<(u64, u64)> = Vec::new();
    for (offset, millis) in times.lines().filter_map(parse_times_line) {
        if known.last().is_none_or(|&(o, _)| o < offset) {
            known.push((offset, millis));
        }
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 4);
    let mut start = 0usize;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let n = known.partition_point(|&(o, _)| o <= start as u64);
        match n.checked_sub(1).map(|k| known[k].1) {
            Some(ms) => out.extend_from_slice(
                format!(
                    "{} {} ",
                    super::model::day(ms, utc_offset),
                    super::model::clock(ms, utc_offset)
                )
                .as_bytes(),
            ),
            None => out.extend(std::iter::repeat_n(b' ', WIDTH)),
        }
        out.extend_from_slice(line);
        start += line.len();
    }
    out
}

/// Where the job's own colours change in a line: from byte `.0` on, style `.1` (until the next).
pub type StylePoints = Vec<(usize, Style)>;

/// Remove terminal escape sequences and GitLab's `section_start:…`/`section_end:…` markers;
/// a carriage return keeps what follows it (progress bars), as a terminal shows it.
pub fn clean_line(raw: &str) -> String {
    clean(raw, &mut Style::default()).0
}

/// [`clean_line`], keeping the job's colours (SGR sequences, `ESC[…m`) as style changes:
/// `pen` is the style in effect at the line's start, and after it (as on a terminal, a colour
/// not reset goes on to the next line).
pub fn clean(raw: &str, pen: &mut Style) -> (String, StylePoints) {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    let mut points: StylePoints = Vec::new();
    // the first point is always at 0: the style the line starts in
    let mark = |points: &mut StylePoints, at: usize, pen: Style| {
        if points.last().is_some_and(|&(o, _)| o == at) {
            points.pop();
        }
        if points.last().is_none_or(|&(_, s)| s != pen) {
            points.push((at, pen));
        }
    };
    mark(&mut points, 0, *pen);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters and intermediates until a final byte @..~
                    let mut params = String::new();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            if d == 'm' {
                                apply_sgr(&params, pen);
                                mark(&mut points, out.len(), *pen);
                            }
                            break;
                        }
                        params.push(d);
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {
                out.clear();
                points.clear();
                mark(&mut points, 0, *pen);
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    // GitLab trace sections: "section_start:1700000000:name[collapsed=true]" then text. Only a
    // marker with its timestamp is one: `grep section_start: …` in a script stays as typed.
    let mut from = 0;
    while let Some(found) = ["section_start:", "section_end:"]
        .iter()
        .filter_map(|m| out[from..].find(m).map(|i| (from + i, m.len())))
        .min()
    {
        let (i, marker_len) = found;
        let rest = &out[i + marker_len..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[digits..].strip_prefix(':') {
            Some(tail) if digits > 0 => {
                let name_len = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.[]=,".contains(c)))
                    .unwrap_or(tail.len());
                let len = marker_len + digits + 1 + name_len;
                out.replace_range(i..i + len, "");
                for (o, _) in points.iter_mut().filter(|(o, _)| *o > i) {
                    *o = o.saturating_sub(len).max(i);
                }
                // two changes now at one place: the later one holds
                points.dedup_by(|later, earlier| {
                    let same = later.0 == earlier.0;
                    if same {
                        earlier.1 = later.1;
                    }
                    same
                });
                from = i;
            }
            _ => from = i + marker_len,
        }
    }
    (out, points)
}

/// Apply an SGR sequence's parameters (`1;32`, `38;5;208`, `` = reset) to `pen`.
fn apply_sgr(params: &str, pen: &mut Style) {
    let mut ps = params
        .split([';', ':'])
        .map(|p| p.parse::<u16>().unwrap_or(0));
    while let Some(p) = ps.next() {
        match p {
            0 => *pen = Style::default(),
            1 => pen.add_modifier |= Modifier::BOLD,
            2 => pen.add_modifier |= Modifier::DIM,
            3 => pen.add_modifier |= Modifier::ITALIC,
            4 => pen.add_modifier |= Modifier::UNDERLINED,
            7 => pen.add_modifier |= Modifier::REVERSED,
            22 => pen.add_modifier.remove(Modifier::BOLD | Modifier::DIM),
            23 => pen.add_modifier.remove(Modifier::ITALIC),
            24 => pen.add_modifier.remove(Modifier::UNDERLINED),
            27 => pen.add_modifier.remove(Modifier::REVERSED),
            30..=37 => pen.fg = Some(BASIC[usize::from(p - 30)]),
            39 => pen.fg = None,
            40..=47 => pen.bg = Some(BASIC[usize::from(p - 40)]),
            49 => pen.bg = None,
            90..=97 => pen.fg = Some(BRIGHT[usize::from(p - 90)]),
            100..=107 => pen.bg = Some(BRIGHT[usize::from(p - 100)]),
            38 | 48 => {
                let colour = match ps.next() {
                    Some(5) => ps.next().map(|n| Color::Indexed(n.min(255) as u8)),
                    Some(2) => {
                        let mut c = || ps.next().map_or(0, |v| v.min(255) as u8);
                        Some(Color::Rgb(c(), c(), c()))
                    }
                    _ => None,
                };
                if p == 38 {
                    pen.fg = colour;
                } else {
                    pen.bg = colour;
                }
            }
            _ => {}
        }
    }
}

const BASIC: [Color; 8] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
];
const BRIGHT: [Color; 8] = [
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];

/// Where the bytes stop being whole characters: a read may end inside one, whose first bytes
/// wait for the next read (invalid bytes earlier on do not matter, they show as �).
fn complete_up_to(bytes: &[u8]) -> usize {
    // a character is at most 4 bytes: its start is among the last 3 if it is cut
    for lead in (bytes.len().saturating_sub(3)..bytes.len()).rev() {
        if bytes[lead] & 0xC0 != 0x80 {
            return match std::str::from_utf8(&bytes[lead..]) {
                Err(e) if e.error_len().is_none() => lead,
                _ => bytes.len(),
            };
        }
    }
    bytes.len()
}

/// Where `needle` occurs in `line`, ignoring case (as Unicode lowercases characters), as byte
/// ranges of `line` that do not overlap.
pub fn match_ranges(line: &str, needle: &str) -> Vec<Range<usize>> {
    let pattern: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let mut found = Vec::new();
    if pattern.is_empty() {
        return found;
    }
    let mut at = 0;
    while at < line.len() {
        match match_at(line, at, &pattern) {
            Some(end) => {
                found.push(at..end);
                at = end;
            }
            None => at += line[at..].chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The end of `pattern` (lowercase) matched in `line` from byte `at`, if it is there.
fn match_at(line: &str, at: usize, pattern: &[char]) -> Option<usize> {
    let mut p = 0;
    for (i, c) in line[at..].char_indices() {
        for lower in c.to_lowercase() {
            if pattern.get(p) != Some(&lower) {
                return None;
            }
            p += 1;
        }
        if p == pattern.len() {
            return Some(at + i + c.len_utf8());
        }
    }
    None
}

impl LogView {
    /// Start over for another job (how the log is shown stays as the user set it).
    pub fn reset(&mut self, key: Option<String>) {
        *self = Self {
            key,
            search: self.search.take(),
            filter: self.filter,
            wrap: self.wrap,
            plain: self.plain,
            ..Self::default()
        };
    }

    /// Append `data`, read from the file at byte `start`. A `start` other than where the last
    /// read ended (the first read of a big file skips to its end) begins afresh there.
    pub fn append(&mut self, start: u64, data: &[u8]) {
        if start != self.offset {
            self.carry.clear();
            self.partial.clear();
            self.partial_start = start;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        // file position of bytes[0]
        let base = start - bytes.len() as u64;
        bytes.extend_from_slice(data);
        self.offset = start + data.len() as u64;
        self.carry = bytes.split_off(complete_up_to(&bytes));
        // '\n' is never part of a multi-byte character: split the bytes, keep their positions.
        let mut from = 0;
        for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.push_str(&String::from_utf8_lossy(&bytes[from..i]));
            let (clean, styles) = clean(&line, &mut self.pen);
            self.push_line(clean, styles);
            from = i + 1;
            self.partial_start = base + from as u64;
        }
        self.partial
            .push_str(&String::from_utf8_lossy(&bytes[from..]));
        (self.partial_clean, self.partial_styles) = clean(&self.partial, &mut self.pen.clone());
        if self.text.len() > MAX_TEXT {
            // a quarter at a time, so that a log growing past the limit is not moved per line
            let excess = self.text.len() - MAX_TEXT * 3 / 4;
            let drop = self.ends.partition_point(|&e| e < excess) + 1;
            self.drop_front(drop.min(self.ends.len()));
        }
    }

    fn push_line(&mut self, line: String, styles: StylePoints) {
        let i = self.ends.len();
        if self
            .search
            .as_deref()
            .is_some_and(|s| !match_ranges(&line, s).is_empty())
        {
            self.matches.push(i);
        }
        let base = self.text.len();
        for (o, style) in styles {
            if self.styles.last().map_or(Style::default(), |&(_, s)| s) != style {
                self.styles.push((base + o, style));
            }
        }
        self.text.push_str(&line);
        self.ends.push(self.text.len());
        self.starts.push(self.partial_start);
    }

    /// Forget the first `n` complete lines.
    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let rows_before = self.row_of_line(n);
        let bytes = self.ends[n - 1];
        let carried = self.style_at(bytes);
        let gone = self.styles.partition_point(|&(o, _)| o <= bytes);
        self.styles.drain(..gone);
        self.styles.iter_mut().for_each(|(o, _)| *o -= bytes);
        if carried != Style::default() {
            self.styles.insert(0, (0, carried));
        }
        self.text.drain(..bytes);
        self.ends.drain(..n);
        self.ends.iter_mut().for_each(|e| *e -= bytes);
        self.starts.drain(..n);
        let gone = self.matches.partition_point(|&l| l < n);
        self.matches.drain(..gone);
        self.matches.iter_mut().for_each(|l| *l -= n);
        self.dropped += n;
        self.top = self.top.saturating_sub(rows_before);
        self.hit = self.hit.and_then(|h| h.checked_sub(n));
        self.forget_old_times();
    }

    /// Append `data`, read from the `.times` file at byte `start`: lines `OFFSET MILLIS`.
    pub fn append_times(&mut self, start: u64, data: &[u8]) {
        if start != self.times_offset {
            self.times_partial.clear();
        }
        self.times_offset = start + data.len() as u64;
        self.times_partial.push_str(&String::from_utf8_lossy(data));
        let Some(end) = self.times_partial.rfind('\n') else {
            return;
        };
        let rest = self.times_partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.times_partial, rest);
        for (offset, millis) in complete.lines().filter_map(parse_times_line) {
            if self.times.last().is_none_or(|&(o, _)| o < offset) {
                self.times.push((offset, millis));
            }
        }
        self.forget_old_times();
    }

    /// Drop the times of bytes before the first line kept (all but the last of them).
    fn forget_old_times(&mut self) {
        let Some(&first) = self.starts.first() else {
            return;
        };
        let before = self.times.partition_point(|&(o, _)| o <= first);
        if before > 1 {
            self.times.drain(..before - 1);
        }
    }

    /// When line `i` (of [`LogView::lines`]) was written, in Unix milliseconds: the time of
    /// the write its first byte came with; none when the `.times` file does not say.
    pub fn time_of(&self, i: usize) -> Option<u64> {
        let start = match self.starts.get(i) {
            Some(&s) => s,
            None if i == self.ends.len() && !self.partial.is_empty() => self.partial_start,
            None => return None,
        };
        let n = self.times.partition_point(|&(o, _)| o <= start);
        n.checked_sub(1).map(|k| self.times[k].1)
    }

    /// Line `i`, the one being written last.
    pub fn line(&self, i: usize) -> Option<&str> {
        match i.cmp(&self.ends.len()) {
            std::cmp::Ordering::Less => {
                let from = i.checked_sub(1).map_or(0, |p| self.ends[p]);
                Some(&self.text[from..self.ends[i]])
            }
            std::cmp::Ordering::Equal if !self.partial.is_empty() => Some(&self.partial_clean),
            _ => None,
        }
    }

    /// The job's colour at byte `at` of `text`.
    fn style_at(&self, at: usize) -> Style {
        let n = self.styles.partition_point(|&(o, _)| o <= at);
        n.checked_sub(1)
            .map_or(Style::default(), |k| self.styles[k].1)
    }

    /// Line `i` in the job's colours: byte ranges of [`LogView::line`] and their style,
    /// covering the line (one default-styled range when it has none, or when `plain`).
    pub fn line_styles(&self, i: usize) -> Vec<(Range<usize>, Style)> {
        let len = self.line(i).map_or(0, str::len);
        if self.plain {
            return vec![(0..len, Style::default())];
        }
        let (first, points): (Style, Vec<(usize, Style)>) = if i < self.ends.len() {
            let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
            let from = self.styles.partition_point(|&(o, _)| o <= start);
            let to = self.styles.partition_point(|&(o, _)| o < self.ends[i]);
            let inside = self.styles[from..to]
                .iter()
                .map(|&(o, s)| (o - start, s))
                .collect();
            (self.style_at(start), inside)
        } else {
            (self.pen, self.partial_styles.clone())
        };
        let mut out: Vec<(Range<usize>, Style)> = Vec::new();
        let (mut at, mut style) = (0, first);
        for (o, s) in points {
            if o > at {
                out.push((at..o, style));
            }
            (at, style) = (o, s);
        }
        if at < len || out.is_empty() {
            out.push((at..len, style));
        }
        out
    }

    /// Every line including the one being written.
    pub fn lines(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.line(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len() + usize::from(!self.partial.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn search(&self) -> Option<&str> {
        self.search.as_deref()
    }

    /// Search for `text` (none, or empty: no search): every line is looked at once here, and
    /// each new line as it arrives.
    pub fn set_search(&mut self, text: Option<String>) {
        self.search = text.filter(|t| !t.is_empty());
        self.hit = None;
        self.earlier_matches = None;
        self.matches = match self.search.as_deref() {
            Some(s) => (0..self.ends.len())
                .filter(|&i| self.line(i).is_some_and(|l| !match_ranges(l, s).is_empty()))
                .collect(),
            None => Vec::new(),
        };
        if self.filtering() {
            self.top = 0;
        }
    }

    /// The lines that contain the search text, rising (the line being written included).
    fn matching(&self) -> impl Iterator<Item = usize> + '_ {
        let partial = self.search.as_deref().filter(|s| {
            !self.partial.is_empty() && !match_ranges(&self.partial_clean, s).is_empty()
        });
        let partial = partial.map(|_| self.ends.len());
        self.matches.iter().copied().chain(partial)
    }

    /// How many lines contain the search text.
    pub fn match_count(&self) -> usize {
        self.matching().count()
    }

    /// The current hit as "which of how many matching lines", counting from 1.
    pub fn hit_position(&self) -> Option<(usize, usize)> {
        let hit = self.hit?;
        let n = self.matching().position(|l| l == hit)?;
        Some((n + 1, self.match_count()))
    }

    /// Only the matching lines are shown: the filter is on and there is a search.
    pub fn filtering(&self) -> bool {
        self.filter && self.search.is_some()
    }

    /// How many rows there are to show: lines, or matching lines when filtering.
    pub fn rows(&self) -> usize {
        if self.filtering() {
            self.match_count()
        } else {
            self.len()
        }
    }

    /// The lines shown from row `first` on.
    pub fn rows_from(&self, first: usize) -> Box<dyn Iterator<Item = usize> + '_> {
        if self.filtering() {
            Box::new(self.matching().skip(first))
        } else {
            Box::new(first..self.len())
        }
    }

    /// The row of the first line at or after `line` that is shown.
    fn row_of_line(&self, line: usize) -> usize {
        if self.filtering() {
            self.matching().take_while(|&l| l < line).count()
        } else {
            line
        }
    }

    /// The first row to show in a pane `height` lines high.
    pub fn first_visible(&self, height: usize) -> usize {
        let max_top = self.rows().saturating_sub(height);
        if self.follow {
            max_top
        } else {
            self.top.min(max_top)
        }
    }

    /// Scroll by `delta` rows (negative: up); scrolling stops following.
    pub fn scroll(&mut self, delta: isize, height: usize) {
        let cur = self.first_visible(height);
        let max_top = self.rows().saturating_sub(height);
        let new = cur.saturating_add_signed(delta).min(max_top);
        self.follow = false;
        self.top = new;
    }

    /// Scroll sideways by `delta` columns (not below the first).
    pub fn scroll_sideways(&mut self, delta: isize) {
        self.left = self.left.saturating_add_signed(delta);
    }

    /// Show only matching lines, or all again; the current hit (or the line at the top) stays
    /// in view.
    pub fn toggle_filter(&mut self, height: usize) {
        let anchor = self
            .hit
            .or_else(|| self.rows_from(self.first_visible(height)).next());
        self.filter = !self.filter;
        if let Some(line) = anchor {
            self.follow = false;
            self.top = self.row_of_line(line).saturating_sub(height / 2);
        }
    }

    /// Jump to the next (or previous) line containing the search text, wrapping around.
    pub fn find(&mut self, forward: bool, height: usize) -> bool {
        let found: Vec<usize> = self.matching().collect();
        let next = match (self.hit, forward) {
            (Some(h), true) => found.iter().find(|&&l| l > h).or(found.first()),
            (Some(h), false) => found.iter().rev().find(|&&l| l < h).or(found.last()),
            (None, true) => found.first(),
            (None, false) => found.last(),
        };
        self.hit = next.copied();
        let Some(hit) = self.hit else {
            return false;
        };
        self.follow = false;
        self.top = self.row_of_line(hit).saturating_sub(height / 2);
        true
    }
}

/// How many lines of the file's first `upto` bytes contain `needle` (as [`match_ranges`] finds
/// it, on the cleaned lines): the search of the lines the pane no longer holds.
pub fn count_matches(path: &Path, upto: u64, needle: &str) -> std::io::Result<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::new(f.take(upto));
    let mut line = Vec::new();
    let mut n = 0;
    while r.read_until(b'\n', &mut line)? > 0 {
        let text = String::from_utf8_lossy(&line);
        if !match_ranges(&clean_line(text.trim_end_matches('\n')), needle).is_empty() {
            n += 1;
        }
        line.clear();
    }
    Ok(n)
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
mod tests;
