//! A terminal capture with ANSI colours (`tmux capture-pane -e -p`) to one SVG image, for the
//! README's dashboard screenshots (`bash bench/screenshot.sh` runs it; rsvg-convert then
//! makes the PNG).
//!
//!     cargo run --release --example ansi_svg -- [--cols N] [--rows N] [IN [OUT]]
//!
//! IN defaults to stdin and OUT to stdout. `--cols`/`--rows` fix the grid (the tmux pane's
//! size: capture-pane drops trailing blanks); without them it is as large as the text.
//!
//! Understood: SGR (reset, bold, dim, italic, underline, reverse, strike-through, the 16
//! colours and their bright variants, 256-colour and truecolour foreground and background in
//! the `;` and `:` forms, default colours), tabs and double-width characters. Other escape
//! sequences (CSI, OSC, two-byte) are skipped. The SVG has a dark background, one rect per
//! run of cells with the same background, and one `<text xml:space="preserve">` per run of
//! cells with the same style, each placed at its column, so the columns stay aligned even
//! where the font's advance differs a little from the cell width. Std only.

use std::fmt::Write as _;
use std::io::{Read, Write};

/// Font size and cell size in pixels: DejaVu Sans Mono advances 1233/2048 em, so 14 px text
/// is 8.43 px wide; its line (ascent + descent) is 1.164 em, which box-drawing characters
/// fill, so vertical lines join at a row height of 16.3 px.
const FONT_SIZE: f64 = 14.0;
const CELL_W: f64 = FONT_SIZE * 1233.0 / 2048.0;
const CELL_H: f64 = FONT_SIZE * 1.164;
/// Baseline below the top of the row (DejaVu's ascent, 1901/2048 em).
const BASELINE: f64 = FONT_SIZE * 1901.0 / 2048.0;
/// Margin around the grid.
const PAD: f64 = 12.0;
const FONT_FAMILY: &str = "'DejaVu Sans Mono', monospace";

const DEFAULT_FG: Rgb = Rgb(0xd8, 0xdc, 0xe2);
const DEFAULT_BG: Rgb = Rgb(0x1c, 0x1f, 0x26);
/// The 16 ANSI colours, tuned to be readable on `DEFAULT_BG` (a Tango-like palette).
const PALETTE16: [Rgb; 16] = [
    Rgb(0x2e, 0x34, 0x36), // black
    Rgb(0xe0, 0x5a, 0x4f), // red
    Rgb(0x8a, 0xc9, 0x4a), // green
    Rgb(0xe5, 0xc0, 0x4c), // yellow
    Rgb(0x5c, 0x9c, 0xe6), // blue
    Rgb(0xc0, 0x7c, 0xd6), // magenta
    Rgb(0x4c, 0xc4, 0xd0), // cyan
    Rgb(0xd3, 0xd7, 0xcf), // white
    Rgb(0x7a, 0x80, 0x8a), // bright black (ratatui's DarkGray)
    Rgb(0xff, 0x6e, 0x64), // bright red
    Rgb(0xa8, 0xe2, 0x6a), // bright green
    Rgb(0xfc, 0xe9, 0x4f), // bright yellow
    Rgb(0x7d, 0xb4, 0xf5), // bright blue
    Rgb(0xd6, 0x9c, 0xe8), // bright magenta
    Rgb(0x6f, 0xe0, 0xe8), // bright cyan
    Rgb(0xf5, 0xf6, 0xf2), // bright white
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

impl Rgb {
    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Colour {
    #[default]
    Default,
    Indexed(u8),
    Rgb(Rgb),
}

/// xterm's 256-colour table: 16 ANSI, a 6×6×6 cube, 24 greys.
fn indexed(i: u8) -> Rgb {
    match i {
        0..=15 => PALETTE16[usize::from(i)],
        16..=231 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
            Rgb(level(i / 36), level(i / 6 % 6), level(i % 6))
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            Rgb(v, v, v)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    fg: Colour,
    bg: Colour,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    reverse: bool,
    hidden: bool,
}

impl Style {
    /// The colours actually painted: reverse video swaps them (defaults included).
    fn painted(&self) -> (Rgb, Rgb) {
        let fg = match self.fg {
            Colour::Default => DEFAULT_FG,
            Colour::Indexed(i) => indexed(i),
            Colour::Rgb(c) => c,
        };
        let bg = match self.bg {
            Colour::Default => DEFAULT_BG,
            Colour::Indexed(i) => indexed(i),
            Colour::Rgb(c) => c,
        };
        if self.reverse {
            (bg, fg)
        } else {
            (fg, bg)
        }
    }

    /// Applies one SGR sequence (its parameter bytes, between `ESC [` and `m`).
    fn apply_sgr(&mut self, params: &str) {
        // Groups split by ';', each with its ':' sub-parameters; empty means 0.
        let groups: Vec<Vec<u32>> = params
            .split(';')
            .map(|g| g.split(':').map(|p| p.parse().unwrap_or(0)).collect())
            .collect();
        let mut i = 0;
        while i < groups.len() {
            let g = &groups[i];
            let code = g.first().copied().unwrap_or(0);
            i += 1;
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                7 => self.reverse = true,
                8 => self.hidden = true,
                9 => self.strike = true,
                21 | 22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                27 => self.reverse = false,
                28 => self.hidden = false,
                29 => self.strike = false,
                30..=37 => self.fg = Colour::Indexed(small(code - 30)),
                39 => self.fg = Colour::Default,
                40..=47 => self.bg = Colour::Indexed(small(code - 40)),
                49 => self.bg = Colour::Default,
                90..=97 => self.fg = Colour::Indexed(small(code - 90 + 8)),
                100..=107 => self.bg = Colour::Indexed(small(code - 100 + 8)),
                38 | 48 | 58 => {
                    let colour = if g.len() > 1 {
                        extended_colon(&g[1..])
                    } else {
                        let (c, used) = extended_semicolon(&groups[i..]);
                        i += used;
                        c
                    };
                    match (code, colour) {
                        (38, Some(c)) => self.fg = c,
                        (48, Some(c)) => self.bg = c,
                        _ => {} // 58: underline colour, not drawn
                    }
                }
                _ => {} // blink, fonts, …: nothing to draw
            }
        }
    }
}

fn small(v: u32) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

/// `38:5:N`, `38:2:R:G:B` or `38:2:CS:R:G:B` (the sub-parameters after 38).
fn extended_colon(sub: &[u32]) -> Option<Colour> {
    match sub {
        [5, n, ..] => Some(Colour::Indexed(small(*n))),
        [2, _, r, g, b, ..] | [2, r, g, b] => {
            Some(Colour::Rgb(Rgb(small(*r), small(*g), small(*b))))
        }
        _ => None,
    }
}

/// `38;5;N` or `38;2;R;G;B`: the colour and how many of the following groups it used.
fn extended_semicolon(rest: &[Vec<u32>]) -> (Option<Colour>, usize) {
    let num = |k: usize| rest.get(k).and_then(|g| g.first().copied());
    match num(0) {
        Some(5) => (num(1).map(|n| Colour::Indexed(small(n))), 2),
        Some(2) => match (num(1), num(2), num(3)) {
            (Some(r), Some(g), Some(b)) => {
                (Some(Colour::Rgb(Rgb(small(r), small(g), small(b)))), 4)
            }
            _ => (None, rest.len()),
        },
        _ => (None, 1),
    }
}

/// Columns a character takes: 0 for combining marks and zero-width characters, 2 for East
/// Asian wide and fullwidth characters and most emoji, else 1 (box drawing included).
fn char_width(c: char) -> usize {
    let u = u32::from(c);
    match u {
        0x0300..=0x036F
        | 0x0483..=0x0489
        | 0x0591..=0x05BD
        | 0x0610..=0x061A
        | 0x064B..=0x065F
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x200B..=0x200F
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F
        | 0xE0100..=0xE01EF => 0,
        0x1100..=0x115F
        | 0x231A..=0x231B
        | 0x2329..=0x232A
        | 0x23E9..=0x23EC
        | 0x23F0
        | 0x23F3
        | 0x25FD..=0x25FE
        | 0x2614..=0x2615
        | 0x2648..=0x2653
        | 0x267F
        | 0x2693
        | 0x26A1
        | 0x26AA..=0x26AB
        | 0x26BD..=0x26BE
        | 0x26C4..=0x26C5
        | 0x26CE
        | 0x26D4
        | 0x26EA
        | 0x26F2..=0x26F3
        | 0x26F5
        | 0x26FA
        | 0x26FD
        | 0x2705
        | 0x270A..=0x270B
        | 0x2728
        | 0x274C
        | 0x274E
        | 0x2753..=0x2755
        | 0x2757
        | 0x2795..=0x2797
        | 0x27B0
        | 0x27BF
        | 0x2B1B..=0x2B1C
        | 0x2B50
        | 0x2B55
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE10..=0xFE19
        | 0xFE30..=0xFE6F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F004
        | 0x1F0CF
        | 0x1F18E
        | 0x1F191..=0x1F19A
        | 0x1F200..=0x1F251
        | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF
        | 0x1F7E0..=0x1F7EB
        | 0x1F90C..=0x1F9FF
        | 0x1FA70..=0x1FAFF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    /// A character (with any combining marks after it) and its style.
    Char {
        text: String,
        style: Style,
        wide: bool,
    },
    /// The right half of a wide character.
    Continuation,
}

impl Cell {
    fn blank(style: Style) -> Self {
        Cell::Char {
            text: " ".into(),
            style,
            wide: false,
        }
    }
}

/// The screen: rows of cells, every row `cols` long.
#[derive(Debug)]
struct Grid {
    cols: usize,
    rows: Vec<Vec<Cell>>,
}

/// Parses a capture into a grid. `cols`/`rows`: the size to clip or pad to (None: as large as
/// the text).
fn parse(input: &str, cols: Option<usize>, rows: Option<usize>) -> Grid {
    let mut lines: Vec<Vec<Cell>> = vec![Vec::new()];
    let mut style = Style::default();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        let line = lines.len() - 1;
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    let mut params = String::new();
                    let mut last = None;
                    for p in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&p) {
                            last = Some(p);
                            break;
                        }
                        params.push(p);
                    }
                    if last == Some('m') && !params.starts_with(['<', '=', '>', '?']) {
                        style.apply_sgr(&params);
                    }
                }
                Some(']' | 'P' | '_' | '^') => {
                    // OSC, DCS, APC, PM: up to BEL or ST (ESC \).
                    while let Some(p) = chars.next() {
                        if p == '\x07' {
                            break;
                        }
                        if p == '\x1b' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(' '..='/') => {
                    // ESC ( B and the like: intermediate bytes, then one final byte.
                    for p in chars.by_ref() {
                        if !(' '..='/').contains(&p) {
                            break;
                        }
                    }
                }
                _ => {} // ESC x: two-byte sequence, skipped
            },
            '\n' => lines.push(Vec::new()),
            '\r' => {} // capture-pane ends lines with \n only
            '\t' => {
                let row = &mut lines[line];
                let next = (row.len() / 8 + 1) * 8;
                while row.len() < next {
                    row.push(Cell::blank(style));
                }
            }
            c if c.is_control() => {}
            c => {
                let row = &mut lines[line];
                match char_width(c) {
                    0 => {
                        // A combining mark joins the character before it.
                        let prev = row
                            .iter_mut()
                            .rev()
                            .find(|cell| matches!(cell, Cell::Char { .. }));
                        if let Some(Cell::Char { text, .. }) = prev {
                            text.push(c);
                        }
                    }
                    2 => {
                        row.push(Cell::Char {
                            text: c.to_string(),
                            style,
                            wide: true,
                        });
                        row.push(Cell::Continuation);
                    }
                    _ => row.push(Cell::Char {
                        text: c.to_string(),
                        style,
                        wide: false,
                    }),
                }
            }
        }
    }
    // capture-pane ends with a newline: no row after it.
    if lines.len() > 1 && lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let cols = cols.unwrap_or_else(|| lines.iter().map(Vec::len).max().unwrap_or(0));
    if let Some(n) = rows {
        lines.resize_with(n, Vec::new);
    }
    for row in &mut lines {
        row.truncate(cols);
        // A wide character cut in half by the right edge becomes a blank.
        if let Some(Cell::Char {
            wide: true, style, ..
        }) = row.last()
        {
            let style = *style;
            if let Some(last) = row.last_mut() {
                *last = Cell::blank(style);
            }
        }
        while row.len() < cols {
            row.push(Cell::blank(Style::default()));
        }
    }
    Grid { cols, rows: lines }
}

fn escape_xml(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn px(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What a text run shares: its cells are drawn by one `<text>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TextStyle {
    fg: Rgb,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    strike: bool,
}

fn text_style(style: &Style) -> TextStyle {
    TextStyle {
        fg: style.painted().0,
        bold: style.bold,
        dim: style.dim,
        italic: style.italic,
        underline: style.underline,
        strike: style.strike,
    }
}

/// Nothing to draw (the background aside).
fn is_blank(style: &Style, text: &str) -> bool {
    style.hidden || (text.trim().is_empty() && !style.underline && !style.strike)
}

fn render(grid: &Grid) -> String {
    let width = grid.cols as f64 * CELL_W + 2.0 * PAD;
    let height = grid.rows.len() as f64 * CELL_H + 2.0 * PAD;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = px(width.ceil()),
        h = px(height.ceil()),
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{}" height="{}" rx="6" fill="{}"/>"#,
        px(width.ceil()),
        px(height.ceil()),
        DEFAULT_BG.hex()
    );
    let _ = writeln!(
        svg,
        r#"<g font-family="{FONT_FAMILY}" font-size="{}">"#,
        px(FONT_SIZE)
    );
    let cell_x = |col: usize| PAD + col as f64 * CELL_W;
    for (r, row) in grid.rows.iter().enumerate() {
        let top = PAD + r as f64 * CELL_H;
        // Backgrounds: one rect per run of cells with the same non-default colour.
        let mut col = 0;
        while col < row.len() {
            let bg = match &row[col] {
                Cell::Char { style, .. } => style.painted().1,
                Cell::Continuation => {
                    col += 1;
                    continue;
                }
            };
            let start = col;
            col += 1;
            while col < row.len() {
                match &row[col] {
                    Cell::Continuation => col += 1,
                    Cell::Char { style, .. } if style.painted().1 == bg => col += 1,
                    Cell::Char { .. } => break,
                }
            }
            if bg != DEFAULT_BG {
                // Rounded outwards so that neighbouring rects leave no hairline between them.
                let x0 = cell_x(start).floor();
                let x1 = cell_x(col).ceil();
                let _ = writeln!(
                    svg,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>"#,
                    px(x0),
                    px(top.floor()),
                    px(x1 - x0),
                    px((top + CELL_H).ceil() - top.floor()),
                    bg.hex()
                );
            }
        }
        // Text: one element per run of cells with the same look; wide characters alone.
        let baseline = top + BASELINE;
        let mut col = 0;
        while col < row.len() {
            let (text, style, wide) = match &row[col] {
                Cell::Char { text, style, wide } => (text, style, *wide),
                Cell::Continuation => {
                    col += 1;
                    continue;
                }
            };
            let look = text_style(style);
            let start = col;
            let mut run = String::new();
            let mut visible = !is_blank(style, text);
            run.push_str(if style.hidden { " " } else { text });
            col += if wide { 2 } else { 1 };
            if !wide {
                while let Some(Cell::Char {
                    text,
                    style,
                    wide: false,
                }) = row.get(col)
                {
                    let blank = is_blank(style, text);
                    // A blank need not have the run's look, unless the run draws a line.
                    if text_style(style) != look && !(blank && !look.underline && !look.strike) {
                        break;
                    }
                    visible |= !blank;
                    run.push_str(if style.hidden { " " } else { text });
                    col += 1;
                }
            }
            if !visible {
                continue;
            }
            let run = if look.underline || look.strike {
                run.as_str()
            } else {
                run.trim_end()
            };
            let mut attrs = format!(
                r#"x="{}" y="{}" fill="{}""#,
                px(cell_x(start)),
                px(baseline),
                look.fg.hex()
            );
            if look.bold {
                attrs.push_str(r#" font-weight="bold""#);
            }
            if look.italic {
                attrs.push_str(r#" font-style="italic""#);
            }
            if look.dim {
                attrs.push_str(r#" fill-opacity="0.6""#);
            }
            match (look.underline, look.strike) {
                (true, true) => attrs.push_str(r#" text-decoration="underline line-through""#),
                (true, false) => attrs.push_str(r#" text-decoration="underline""#),
                (false, true) => attrs.push_str(r#" text-decoration="line-through""#),
                (false, false) => {}
            }
            let mut escaped = String::new();
            escape_xml(run, &mut escaped);
            let _ = writeln!(
                svg,
                r#"<text {attrs} xml:space="preserve">{escaped}</text>"#
            );
        }
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

fn usage() -> String {
    "usage: ansi_svg [--cols N] [--rows N] [IN [OUT]]   (IN, OUT: default stdin, stdout)".into()
}

fn run() -> Result<(), String> {
    let mut cols = None;
    let mut rows = None;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{name} needs a positive number\n{}", usage()))
        };
        match a.as_str() {
            "--cols" => cols = Some(number("--cols")?),
            "--rows" => rows = Some(number("--rows")?),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            _ if a.starts_with('-') && a != "-" => {
                return Err(format!("unknown option {a}\n{}", usage()))
            }
            _ => files.push(a),
        }
    }
    if files.len() > 2 {
        return Err(usage());
    }
    let mut input = Vec::new();
    match files.first().map(String::as_str) {
        None | Some("-") => std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| format!("reading stdin: {e}"))?,
        Some(path) => {
            input = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
            input.len()
        }
    };
    let svg = render(&parse(&String::from_utf8_lossy(&input), cols, rows));
    match files.get(1).map(String::as_str) {
        None | Some("-") => std::io::stdout()
            .write_all(svg.as_bytes())
            .map_err(|e| format!("writing stdout: {e}")),
        Some(path) => std::fs::write(path, svg).map_err(|e| format!("writing {path}: {e}")),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ansi_svg: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(grid: &Grid, row: usize, col: usize) -> (String, Style) {
        match &grid.rows[row][col] {
            Cell::Char { text, style, .. } => (text.clone(), *style),
            Cell::Continuation => panic!("({row}, {col}) is the right half of a wide character"),
        }
    }

    fn texts(svg: &str) -> Vec<&str> {
        svg.lines().filter(|l| l.starts_with("<text ")).collect()
    }

    #[test]
    fn basic_colours_bold_and_reset() {
        let g = parse("a\x1b[1;31mb\x1b[0mc\x1b[92md\x1b[mE", None, None);
        assert_eq!(g.cols, 5);
        assert_eq!(cell(&g, 0, 0).1, Style::default());
        let b = cell(&g, 0, 1).1;
        assert!(b.bold);
        assert_eq!(b.fg, Colour::Indexed(1));
        assert_eq!(cell(&g, 0, 2).1, Style::default());
        assert_eq!(cell(&g, 0, 3).1.fg, Colour::Indexed(10));
        assert_eq!(cell(&g, 0, 4).1, Style::default(), "ESC[m is a reset");
        assert_eq!(indexed(1), PALETTE16[1]);
    }

    #[test]
    fn colours_256_and_truecolour_in_both_forms_and_defaults() {
        let g = parse(
            "\x1b[38;5;196;48;2;1;2;3mx\x1b[38:2::10:20:30;48:5:21my\x1b[38:2:40:50:60mz\x1b[39;49mw",
            None,
            None,
        );
        let x = cell(&g, 0, 0).1;
        assert_eq!(x.fg, Colour::Indexed(196));
        assert_eq!(x.bg, Colour::Rgb(Rgb(1, 2, 3)));
        assert_eq!(indexed(196), Rgb(255, 0, 0));
        assert_eq!(indexed(21), Rgb(0, 0, 255));
        assert_eq!(indexed(244), Rgb(128, 128, 128));
        let y = cell(&g, 0, 1).1;
        assert_eq!(y.fg, Colour::Rgb(Rgb(10, 20, 30)));
        assert_eq!(y.bg, Colour::Indexed(21));
        assert_eq!(cell(&g, 0, 2).1.fg, Colour::Rgb(Rgb(40, 50, 60)));
        let w = cell(&g, 0, 3).1;
        assert_eq!((w.fg, w.bg), (Colour::Default, Colour::Default));
        // The truecolour background of x is painted; y's 256-colour one too, in one rect each.
        let svg = render(&g);
        assert!(svg.contains(r##"fill="#010203""##), "{svg}");
        assert!(svg.contains(r##"fill="#0000ff""##), "{svg}");
        assert!(
            svg.contains(r##"<text x="12" y="25" fill="#ff0000" xml:space="preserve">x</text>"##),
            "{svg}"
        );
    }

    #[test]
    fn reverse_video_swaps_default_and_set_colours() {
        let g = parse("\x1b[7mab\x1b[27mc\x1b[7;32;44md", None, None);
        let a = cell(&g, 0, 0).1;
        assert!(a.reverse);
        assert_eq!(a.painted(), (DEFAULT_BG, DEFAULT_FG));
        assert!(!cell(&g, 0, 2).1.reverse);
        assert_eq!(cell(&g, 0, 3).1.painted(), (PALETTE16[4], PALETTE16[2]));
        let svg = render(&g);
        // One background rect for "ab" (two cells wide) in the default foreground colour...
        let fg = DEFAULT_FG.hex();
        let ab: Vec<_> = svg
            .lines()
            .filter(|l| l.starts_with("<rect x=") && l.contains(&format!(r#"fill="{fg}""#)))
            .collect();
        assert_eq!(ab.len(), 1, "{svg}");
        let width = (PAD + 2.0 * CELL_W).ceil() - PAD;
        assert!(
            ab[0].contains(&format!(r#"width="{}""#, px(width))),
            "{}",
            ab[0]
        );
        // ... and "ab" written in the default background colour.
        assert!(
            texts(&svg)
                .iter()
                .any(|t| t.contains(&format!(r#"fill="{}""#, DEFAULT_BG.hex()))
                    && t.ends_with(">ab</text>")),
            "{svg}"
        );
    }

    #[test]
    fn text_is_xml_escaped_and_runs_keep_their_spaces() {
        let g = parse("a <b> & \"c\" 'd'", None, None);
        let svg = render(&g);
        let t = texts(&svg);
        assert_eq!(t.len(), 1, "{svg}");
        assert!(
            t[0].ends_with(
                r#"xml:space="preserve">a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;</text>"#
            ),
            "{}",
            t[0]
        );
    }

    #[test]
    fn box_drawing_is_kept_and_wide_characters_take_two_cells() {
        let g = parse("┌──┐\n│日x│\n└──┘", Some(5), Some(4));
        assert_eq!(g.rows.len(), 4);
        assert!(g.rows.iter().all(|r| r.len() == 5));
        assert_eq!(cell(&g, 0, 0).0, "┌");
        assert_eq!(cell(&g, 1, 1).0, "日");
        assert_eq!(g.rows[1][2], Cell::Continuation);
        assert_eq!(cell(&g, 1, 3).0, "x", "the character after a wide one");
        let svg = render(&g);
        assert!(svg.contains(">┌──┐</text>"), "{svg}");
        assert!(svg.contains(">└──┘</text>"), "{svg}");
        // The wide character is placed on its own, and x two cells later.
        let t = texts(&svg);
        let at = |s: &str| {
            t.iter()
                .find(|l| l.ends_with(&format!(">{s}</text>")))
                .map(|l| l.split('"').nth(1).unwrap_or("").to_string())
        };
        assert_eq!(at("日"), Some(px(PAD + CELL_W)));
        assert_eq!(at("x│"), Some(px(PAD + 3.0 * CELL_W)));
        assert_eq!(char_width('─'), 1);
        assert_eq!(char_width('\u{301}'), 0);
    }

    #[test]
    fn a_wide_character_cut_by_the_right_edge_becomes_blank() {
        let g = parse("ab日", Some(3), None);
        assert_eq!(cell(&g, 0, 2).0, " ");
    }

    #[test]
    fn combining_marks_join_their_character() {
        let g = parse("e\u{301}x", None, None);
        assert_eq!(g.cols, 2);
        assert_eq!(cell(&g, 0, 0).0, "e\u{301}");
        assert_eq!(cell(&g, 0, 1).0, "x");
    }

    #[test]
    fn other_escape_sequences_are_skipped() {
        let g = parse(
            "\x1b]8;;https://x.invalid\x07a\x1b]8;;\x1b\\\x1b[2Jb\x1b[?25hc\x1b(Bd\x1b[>4;1me",
            None,
            None,
        );
        let text: String = (0..g.cols).map(|c| cell(&g, 0, c).0).collect();
        assert_eq!(text, "abcde");
        assert!((0..g.cols).all(|c| cell(&g, 0, c).1 == Style::default()));
    }

    #[test]
    fn grid_is_padded_and_clipped_to_the_pane() {
        let g = parse("abcdef\nx\n", Some(4), Some(3));
        assert_eq!(
            g.rows.len(),
            3,
            "the final newline adds no row; padded to 3"
        );
        let row0: String = (0..4).map(|c| cell(&g, 0, c).0).collect();
        assert_eq!(row0, "abcd");
        assert_eq!(cell(&g, 1, 3).0, " ");
        assert_eq!(cell(&g, 0, 1).0, "b");
        let svg = render(&g);
        assert!(svg.starts_with(&format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}""#,
            px((4.0 * CELL_W + 2.0 * PAD).ceil())
        )));
    }

    #[test]
    fn tabs_go_to_the_next_multiple_of_eight() {
        let g = parse("ab\tc", None, None);
        assert_eq!(cell(&g, 0, 8).0, "c");
    }

    #[test]
    fn a_style_change_on_blanks_does_not_split_a_run_but_on_text_does() {
        // Bold spaces between plain words: one run; a coloured word: its own run.
        let g = parse("a\x1b[1m \x1b[0mb \x1b[33mc", None, None);
        let svg = render(&g);
        let t = texts(&svg);
        assert_eq!(t.len(), 2, "{svg}");
        assert!(
            t[0].ends_with(">a b </text>") || t[0].ends_with(">a b</text>"),
            "{}",
            t[0]
        );
        assert!(
            t[1].contains(&format!(r#"fill="{}""#, PALETTE16[3].hex())),
            "{}",
            t[1]
        );
        assert!(t[1].ends_with(">c</text>"));
    }

    #[test]
    fn bold_dim_underline_and_hidden_show_in_the_svg() {
        let g = parse("\x1b[1;2;4mu\x1b[22;24;8ms\x1b[28m", None, None);
        let svg = render(&g);
        let t = texts(&svg);
        assert_eq!(t.len(), 1, "hidden text is not drawn: {svg}");
        assert!(t[0].contains(r#"font-weight="bold""#));
        assert!(t[0].contains(r#"fill-opacity="0.6""#));
        assert!(t[0].contains(r#"text-decoration="underline""#));
    }
}
