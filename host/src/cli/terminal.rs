//! Guest-controlled text made safe to print for a person: log records,
//! stderr tails, error messages and progress notes come from the job, and a
//! job must not be able to drive the operator's terminal (move the cursor,
//! rewrite the title, hide text, answer back through a terminal query).
//!
//! Every printer of the human output goes through [`line`] (a table cell or
//! a one-line message) or [`block`] (text that keeps its lines). JSON output
//! needs neither: serde_json escapes every C0 control character.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` on one line: every control character, newlines and tabs too, and
/// every bidirectional override, written as a visible escape (`\x1b`,
/// `\n`, `\u{202e}`).
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// `text` keeping its newlines and tabs; every other control character and
/// bidirectional override written as a visible escape.
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| !keep(c) && needs_escape(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 control characters and DEL (`char::is_control`: ESC starts
/// every terminal sequence, U+009B is a one-character CSI), and the
/// bidirectional embeddings, overrides and isolates that reorder what a
/// line shows.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "line 7 ... ünïcödé ✓";
        assert!(matches!(line(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(block("a\n\tb"), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_sequences_become_visible() {
        let hostile = "\x1b[2J\x1b]0;pwned\x07red\u{9b}31m\u{202e}txt.exe\r\x7f";
        let shown = line(hostile);
        assert_eq!(
            shown,
            "\\x1b[2J\\x1b]0;pwned\\x07red\\u{9b}31m\\u{202e}txt.exe\\r\\x7f"
        );
        assert!(!shown.chars().any(needs_escape));
    }

    #[test]
    fn a_line_escapes_newlines_and_a_block_keeps_them() {
        assert_eq!(line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(block("a\nb\tc\x1b"), "a\nb\tc\\x1b");
    }
}
