//! The tests of the log pane's model: reading, cleaning, searching, scrolling and wrapping a log.

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
    assert_eq!(
        clean_line("a section_end:1700000001:step_script b section_start:1:x[collapsed=true] c"),
        "a  b  c"
    );
}

#[test]
fn the_jobs_colours_are_kept_as_style_changes() {
    use ratatui::style::{Color, Modifier};
    let green = Style::default()
        .fg(Color::Green)
        .add_modifier(Modifier::BOLD);
    let mut pen = Style::default();
    let (text, points) = clean("\x1b[32;1m$ echo hi\x1b[0;m", &mut pen);
    assert_eq!(text, "$ echo hi");
    assert_eq!(points, vec![(0, green), (9, Style::default())]);
    assert_eq!(pen, Style::default());
    // a section marker between two changes: the points move with the text
    let (text, points) = clean("a section_end:1700000000:x \x1b[31mred", &mut pen);
    assert_eq!(text, "a  red");
    let red = Style::default().fg(Color::Red);
    assert_eq!(points, vec![(0, Style::default()), (3, red)]);
    pen = Style::default();
    // 256 colours and true colour; a colour not reset goes on after the line
    clean("\x1b[38;5;208mx\x1b[48;2;1;2;3m", &mut pen);
    assert_eq!(pen.fg, Some(Color::Indexed(208)));
    assert_eq!(pen.bg, Some(Color::Rgb(1, 2, 3)));
}

#[test]
fn a_colour_goes_on_into_the_next_lines_until_reset_and_plain_drops_it() {
    use ratatui::style::Color;
    let red = Style::default().fg(Color::Red);
    let mut v = LogView::default();
    v.append(
        0,
        b"ok \x1b[31merror:\nstill red\n\x1b[0mdone\nbeing wr\x1b[31mitten",
    );
    assert_eq!(
        v.line_styles(0),
        vec![(0..3, Style::default()), (3..9, red)]
    );
    assert_eq!(v.line_styles(1), vec![(0..9, red)]);
    assert_eq!(v.line_styles(2), vec![(0..4, Style::default())]);
    assert_eq!(
        v.line_styles(3),
        vec![(0..8, Style::default()), (8..13, red)],
        "the line being written"
    );
    v.plain = true;
    assert_eq!(v.line_styles(1), vec![(0..9, Style::default())]);
}

#[test]
fn dropping_old_lines_keeps_the_colour_in_effect() {
    use ratatui::style::Color;
    let mut v = LogView::default();
    let filler = "y".repeat(1 << 16);
    let mut text = format!("\x1b[34m{filler}\n");
    for _ in 0..(MAX_TEXT >> 16) {
        text.push_str(&filler);
        text.push('\n');
    }
    v.append(0, text.as_bytes());
    assert!(v.dropped > 0);
    let blue = Style::default().fg(Color::Blue);
    assert_eq!(v.line_styles(0), vec![(0..filler.len(), blue)]);
}

#[test]
fn text_that_only_mentions_a_section_marker_is_kept() {
    for line in [
        "$ grep -rn \"section_start:\" .",
        "section_end: not a marker",
        "section_start:12 no colon",
        "section_start:section_end:",
    ] {
        assert_eq!(clean_line(line), line);
    }
}

#[test]
fn a_character_split_between_two_reads_is_whole_even_after_invalid_bytes() {
    let mut v = LogView::default();
    // an invalid byte, then 'é' (c3 a9) cut after its first byte
    v.append(0, b"\xff ok \xc3");
    v.append(6, b"\xa9t\xe6\x97");
    v.append(10, b"\xa5\n");
    assert_eq!(v.lines().collect::<Vec<_>>(), vec!["\u{fffd} ok ét日"]);
}

#[test]
fn lines_arriving_in_pieces_are_joined() {
    let mut v = LogView::default();
    v.append(0, b"hel");
    assert_eq!(v.lines().collect::<Vec<_>>(), vec!["hel"]);
    v.append(3, b"lo\nwor");
    v.append(9, b"ld\n");
    assert_eq!(v.lines().collect::<Vec<_>>(), vec!["hello", "world"]);
    assert_eq!(v.starts, vec![0, 6]);
    assert_eq!(v.offset, 12);
}

#[test]
fn a_utf8_character_split_across_reads_is_kept_whole() {
    let mut v = LogView::default();
    let s = "été\nà\n".as_bytes();
    v.append(0, &s[..1]);
    v.append(1, &s[1..]);
    assert_eq!(v.lines().collect::<Vec<_>>(), vec!["été", "à"]);
    assert_eq!(v.starts, vec![0, 6]);
}

#[test]
fn memory_is_bounded_by_dropping_the_oldest_lines() {
    let mut v = LogView::default();
    let line = "x".repeat(1023);
    let n = MAX_TEXT / 1024 + 5;
    let text: String = (0..n).map(|i| format!("{i} {line}\n")).collect();
    v.append(0, text.as_bytes());
    assert!(v.text.len() <= MAX_TEXT);
    assert!(v.dropped > 0);
    assert_eq!(v.len() + v.dropped, n);
    let first = v.line(0).unwrap();
    assert!(
        first.starts_with(&format!("{} ", v.dropped)),
        "{}",
        &first[..10]
    );
    let dropped_bytes: usize = text.lines().take(v.dropped).map(|l| l.len() + 1).sum();
    assert_eq!(v.starts[0], dropped_bytes as u64);
}

#[test]
fn a_log_within_gitlabs_output_limit_is_held_whole() {
    // 50 015 lines: the dashboard used to keep the last 10 000 (`g` landed on line 40 013)
    let mut v = LogView::default();
    let text: String = (1..=50_015).map(|i| format!("line {i}\n")).collect();
    v.append(0, text.as_bytes());
    assert_eq!((v.len(), v.dropped), (50_015, 0));
    assert_eq!(v.line(0), Some("line 1"));
    v.set_search(Some("line 7\n".trim_end().into()));
    assert!(v.find(true, 10));
    assert_eq!(
        v.line(v.hit.unwrap()),
        Some("line 7"),
        "an early line is found"
    );
}

#[test]
fn search_counts_matching_lines_and_says_which_one_is_shown() {
    let mut v = LogView::default();
    v.append(0, b"ok\nERROR one\nok\nan error, another Error\nwarn");
    v.set_search(Some("error".into()));
    assert_eq!(v.match_count(), 2, "lines, not occurrences");
    assert_eq!(v.hit_position(), None);
    assert!(v.find(true, 4));
    assert_eq!(v.hit_position(), Some((1, 2)));
    assert!(v.find(true, 4));
    assert_eq!(v.hit_position(), Some((2, 2)));
    // the line being written counts once it matches, and new lines are searched
    v.append(40, b"ing error\nerror again\n");
    assert_eq!(v.match_count(), 4);
    assert_eq!(v.hit_position(), Some((2, 4)));
}

#[test]
fn matches_are_found_whatever_their_case_with_their_place_in_the_line() {
    assert_eq!(match_ranges("an Error, ERROR", "error"), vec![3..8, 10..15]);
    assert_eq!(match_ranges("été ÉTÉ", "été"), vec![0..5, 6..11]);
    assert_eq!(
        match_ranges("aaa", "aa"),
        vec![0..2],
        "matches do not overlap"
    );
    assert!(match_ranges("abc", "").is_empty());
    assert!(match_ranges("ab", "abc").is_empty());
}

#[test]
fn the_filter_shows_only_matching_lines_and_keeps_the_hit_in_view() {
    let mut v = LogView::default();
    let text: String = (0..100)
        .map(|i| {
            if i % 10 == 3 {
                format!("{i} fail\n")
            } else {
                format!("{i}\n")
            }
        })
        .collect();
    v.append(0, text.as_bytes());
    v.set_search(Some("FAIL".into()));
    assert!(v.find(true, 4));
    assert!(v.find(true, 4));
    assert_eq!(v.line(v.hit.unwrap()), Some("13 fail"));
    v.toggle_filter(4);
    assert!(v.filtering());
    assert_eq!(v.rows(), 10);
    let shown: Vec<&str> = v
        .rows_from(v.first_visible(4))
        .take(4)
        .filter_map(|l| v.line(l))
        .collect();
    assert!(shown.contains(&"13 fail"), "{shown:?}");
    assert!(shown.iter().all(|l| l.ends_with("fail")), "{shown:?}");
    v.toggle_filter(4);
    assert_eq!(v.rows(), 100);
    let shown: Vec<usize> = v.rows_from(v.first_visible(4)).take(4).collect();
    assert!(shown.contains(&13), "{shown:?}");
    // no search: the filter has nothing to filter by and shows every line
    v.set_search(None);
    v.filter = true;
    assert_eq!(v.rows(), 100);
}

#[test]
fn dropping_old_lines_keeps_the_matches_and_the_hit_on_their_lines() {
    let mut v = LogView::default();
    v.set_search(Some("needle".into()));
    let filler = "y".repeat(1 << 16);
    let mut at = 0u64;
    let mut push = |v: &mut LogView, s: String| {
        v.append(at, s.as_bytes());
        at += s.len() as u64;
    };
    push(&mut v, "needle early\n".into());
    for _ in 0..(MAX_TEXT >> 16) / 2 {
        push(&mut v, format!("{filler}\n"));
    }
    push(&mut v, "needle late\n".into());
    assert!(v.find(false, 4));
    assert_eq!(v.line(v.hit.unwrap()), Some("needle late"));
    for _ in 0..(MAX_TEXT >> 16) * 2 {
        push(&mut v, format!("{filler}\n"));
    }
    assert!(v.dropped > 0);
    assert_eq!(v.match_count(), 0, "both needles were dropped");
    assert_eq!(v.hit, None);
}

#[test]
fn following_shows_the_end_and_scrolling_up_stops_following() {
    let mut v = LogView::default();
    v.append(0, b"1\n2\n3\n4\n5\n");
    assert_eq!(v.first_visible(2), 3);
    v.scroll(-2, 2);
    assert!(!v.follow);
    assert_eq!(v.first_visible(2), 1);
    v.append(10, b"6\n");
    assert_eq!(v.first_visible(2), 1, "a scrolled view stays where it is");
}

#[test]
fn search_jumps_forward_and_back_and_wraps() {
    let mut v = LogView::default();
    v.append(0, b"a ERROR\nb\nc error\nd\n");
    v.set_search(Some("error".into()));
    assert!(v.find(true, 2));
    assert_eq!(v.hit, Some(0));
    assert!(v.find(true, 2));
    assert_eq!(v.hit, Some(2));
    assert!(v.find(true, 2));
    assert_eq!(v.hit, Some(0), "wraps around");
    assert!(v.find(false, 2));
    assert_eq!(v.hit, Some(2));
    v.set_search(Some("absent".into()));
    assert!(!v.find(true, 2));
}

#[test]
fn each_line_gets_the_time_of_the_write_it_starts_in() {
    let mut v = LogView::default();
    // writes: "one\ntw" at 0 (t=1000), "o\nthree\n" at 6 (t=2000), "four\n" at 14 (t=3000)
    v.append(0, b"one\ntwo\nthree\nfour\nfi");
    assert_eq!(v.time_of(0), None, "no times read yet");
    v.append_times(0, b"0 1000\n6 20");
    v.append_times(11, b"00\n14 3000\n");
    assert_eq!(v.times, vec![(0, 1000), (6, 2000), (14, 3000)]);
    assert_eq!(v.starts, vec![0, 4, 8, 14]);
    assert_eq!(v.time_of(0), Some(1000));
    assert_eq!(v.time_of(1), Some(1000), "two began in the first write");
    assert_eq!(v.time_of(2), Some(2000));
    assert_eq!(v.time_of(3), Some(3000));
    assert_eq!(v.time_of(4), Some(3000), "the line being written");
    assert_eq!(v.time_of(5), None);
}

#[test]
fn lines_before_the_first_time_have_none() {
    let mut v = LogView::default();
    v.append(0, b"old\nnew\n");
    v.append_times(0, b"4 5000\ngarbage\n");
    assert_eq!(v.time_of(0), None);
    assert_eq!(v.time_of(1), Some(5000));
}

#[test]
fn a_big_log_read_from_its_end_keeps_true_offsets() {
    let mut v = LogView::default();
    // the first read of a big file starts at byte 1000 (after the dropped partial line)
    v.append(1000, b"tail\nend\n");
    v.append_times(0, b"0 1000\n990 2000\n1005 3000\n");
    assert_eq!(v.starts, vec![1000, 1005]);
    assert_eq!(v.offset, 1009, "the next read goes on from the file's end");
    assert_eq!(v.time_of(0), Some(2000));
    assert_eq!(v.time_of(1), Some(3000));
    v.append(1009, b"more\n");
    assert_eq!(v.starts, vec![1000, 1005, 1009]);
    assert_eq!(
        v.times.first(),
        Some(&(990, 2000)),
        "older times are forgotten"
    );
}

#[test]
fn the_lines_no_longer_held_are_searched_in_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.log");
    std::fs::write(
        &p,
        "an Error\nok\n\x1b[31merror\x1b[0m again\nlater error\n",
    )
    .unwrap();
    // the first three lines (32 bytes) are the ones the pane dropped
    assert_eq!(count_matches(&p, 32, "ERROR").unwrap(), 2);
    assert_eq!(count_matches(&p, 0, "error").unwrap(), 0);
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

#[test]
fn a_log_saved_with_timestamps_has_each_lines_write_time_and_keeps_the_raw_text() {
    let raw = b"\x1b[32;1mfirst\x1b[0;m\nsecond\nthird";
    // "second" starts at byte 18, "third" at 25: a line has the time of its first byte
    // (27 is inside "third"); a garbled line is ignored
    let times = "0 1000\ngarbage\n18 3600000\n27 7200000\n";
    let out = String::from_utf8(with_timestamps(raw, times, 3600)).unwrap();
    assert_eq!(
        out,
        "1970-01-01 01:00:01 \x1b[32;1mfirst\x1b[0;m\n\
         1970-01-01 02:00:00 second\n\
         1970-01-01 02:00:00 third"
    );
    // no times file: blank, same width
    let out = String::from_utf8(with_timestamps(b"a\n", "", 0)).unwrap();
    assert_eq!(out, format!("{}a\n", " ".repeat(20)));
}
