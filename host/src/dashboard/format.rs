//! How the dashboard writes times, durations and sizes for people.

use crate::clock::Millis;

/// An instant as `2026-01-01 00:00:03` (UTC).
pub fn time(at: Millis) -> String {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => at.to_string(),
    }
}

/// An instant as an hour and minute (UTC), for chart axes.
pub fn clock(at: Millis) -> String {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(ts) => ts.strftime("%H:%M").to_string(),
        Err(_) => at.to_string(),
    }
}

/// An instant as a day and a time (UTC), for axes longer than a day's
/// half: `Jan 01 00:15`.
pub fn day_clock(at: Millis) -> String {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(ts) => ts.strftime("%b %d %H:%M").to_string(),
        Err(_) => at.to_string(),
    }
}

/// How long ago `at` was, seen at `now`: `3 s ago`, `in 2 min`.
pub fn relative(now: Millis, at: Millis) -> String {
    if at <= now {
        format!("{} ago", millis(now - at))
    } else {
        format!("in {}", millis(at - now))
    }
}

/// A duration in milliseconds: `850 ms`, `12.5 s`, `4 min 10 s`, `3 h 5 min`.
pub fn millis(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A duration in microseconds: `412 µs`, `3.20 ms`, then as [`millis`].
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1_000.0),
        _ => millis((us / 1_000) as i64),
    }
}

/// A size in bytes: `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with thousands separated: `1 234 567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// Text made safe for HTML and SVG (for markup the server writes itself
/// outside the templates, which escape on their own).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_these() {
        assert_eq!(time(1_767_225_603_000), "2026-01-01 00:00:03");
        assert_eq!(day_clock(1_767_225_600_000 + 15 * 60_000), "Jan 01 00:15");
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(12_500), "12.5 s");
        assert_eq!(millis(250_000), "4 min 10 s");
        assert_eq!(micros(3_200), "3.20 ms");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(999), "999");
        assert_eq!(relative(10_000, 7_000), "3.0 s ago");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
